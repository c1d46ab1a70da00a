//! Prints the ticketing evaluation: a simulated Golden-Week day at the Tianshan Grand Canyon with
//! sales controlled by the live levels alone and booking-aware (timed-entry slots).
//! `cargo run --release --example admission_eval [SEED] [--json]`.

fn main() {
    let mut seed = 42;
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            s => match s.parse() {
                Ok(n) => seed = n,
                Err(_) => {
                    eprintln!("usage: admission_eval [SEED] [--json]");
                    std::process::exit(2);
                }
            },
        }
    }
    let c = visitorflow::sim::booking_eval::evaluate(seed);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).expect("serialisable")
        );
    } else {
        print!("{c}");
    }
}
