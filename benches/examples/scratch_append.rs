use huduma_benches::*;
fn main() {
    let mut f = fixture();
    let t = std::time::Instant::now();
    for b in 0..40u64 {
        let subs: Vec<_> = (b * 1024..(b + 1) * 1024).map(|i| registration("p", i)).collect();
        for r in f.writer.execute_batch(&subs) {
            r.unwrap();
        }
    }
    eprintln!("{:?} per 1024", t.elapsed() / 40);
}
