//! Prints the dispatch advisor's evaluation: a simulated Golden-Week day of the county without
//! advice and with advice followed. `cargo run --release --example dispatch_eval [SEED] [--json]`.

fn main() {
    let mut seed = 42;
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            s => match s.parse() {
                Ok(n) => seed = n,
                Err(_) => {
                    eprintln!("usage: dispatch_eval [SEED] [--json]");
                    std::process::exit(2);
                }
            },
        }
    }
    let c = visitorflow::sim::dispatch::evaluate(seed);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).expect("serialisable")
        );
    } else {
        print!("{c}");
    }
}
