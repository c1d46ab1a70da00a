//! The shared datasets (`../shared/data`: UCI CalIt2, Dublin footfall) for the replay tests. They
//! lie beside the project, not in it: a clone elsewhere has none, and a replay then says so
//! loudly and passes — unless `VF_REQUIRE_DATA=1`, which `scripts/test` sets where they are.

use std::path::PathBuf;

/// `rel` under `$VISITORFLOW_DATA_DIR`, `../shared/data` or `/work/shared/data`, the first
/// that has it; `None` (after saying so) when none does.
pub fn dataset(rel: &str) -> Option<PathBuf> {
    let dirs = [
        std::env::var_os("VISITORFLOW_DATA_DIR").map(PathBuf::from),
        Some(PathBuf::from("../shared/data")),
        Some(PathBuf::from("/work/shared/data")),
    ];
    if let Some(p) = dirs
        .into_iter()
        .flatten()
        .map(|d| d.join(rel))
        .find(|p| p.is_file())
    {
        return Some(p);
    }
    let msg = format!(
        "\n\n######## REPLAY SKIPPED: dataset {rel} not found (set VISITORFLOW_DATA_DIR) ########\n"
    );
    assert!(
        std::env::var_os("VF_REQUIRE_DATA").is_none(),
        "{msg}VF_REQUIRE_DATA is set"
    );
    eprintln!("{msg}");
    None
}
