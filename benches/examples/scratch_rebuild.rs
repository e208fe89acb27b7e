use huduma_benches::*;
use registry_core::replay;
fn main() {
    let (f, _) = populated(50_000, 1024);
    let t = std::time::Instant::now();
    let n = replay::rebuild(&*f.store, &secrets(), &mut |_| ()).unwrap();
    eprintln!("rebuild {n} records: {:?} ({:.0}/s)", t.elapsed(), n as f64 / t.elapsed().as_secs_f64());
}
