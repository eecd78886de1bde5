//! Build-context streaming: throughput, and peak memory for a small and a large context, to
//! show that memory does not grow with the context's size. Prints figures; asserts nothing.
//!
//! `cargo bench --bench context` (or `scripts/bench-context`). `DECKHAND_BENCH_MIB` sets the
//! large context's size (default 1024).

use std::fs;
use std::path::Path;
use std::time::Instant;

use deckhand::image::context::Context;
use futures_util::StreamExt;

fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A context of `files` files of `size` bytes each, plus an ignored file as large as them all.
fn make_context(root: &Path, files: usize, size: u64) {
    fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    fs::write(root.join(".dockerignore"), "ignored.bin\n").unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    let block = vec![0x5a_u8; 1 << 20];
    for i in 0..files {
        let path = root.join(format!("data/f{i:05}"));
        let mut left = size;
        let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
        let mut f = fs::File::create(&path).unwrap();
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            out.clear();
            out.extend_from_slice(&block[..n]);
            std::io::Write::write_all(&mut f, &out).unwrap();
            left -= n as u64;
        }
    }
    fs::File::create(root.join("ignored.bin"))
        .unwrap()
        .set_len(files as u64 * size)
        .unwrap();
}

fn stream(rt: &tokio::runtime::Runtime, root: &Path) -> (u64, f64) {
    let context = Context::prepare(root, None).unwrap();
    let start = Instant::now();
    let sent = rt.block_on(async {
        let (mut body, walker) = context.stream();
        let mut sent = 0u64;
        while let Some(chunk) = body.next().await {
            sent += chunk.unwrap().len() as u64;
        }
        walker.await.unwrap().unwrap();
        sent
    });
    (sent, start.elapsed().as_secs_f64())
}

fn main() {
    let large_mib: u64 = std::env::var("DECKHAND_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("context streaming (tar over a bounded channel), one run each:");
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>14}",
        "context", "sent MiB", "seconds", "MiB/s", "peak RSS MiB"
    );
    for (label, files, size) in [
        ("2,000 files x 4 KiB", 2000usize, 4096u64),
        ("large files", (large_mib / 64).max(1) as usize, 64 << 20),
    ] {
        let dir = tempfile::tempdir().unwrap();
        make_context(dir.path(), files, size);
        let (sent, secs) = stream(&rt, dir.path());
        let mib = sent as f64 / (1 << 20) as f64;
        println!(
            "{:<28} {:>10.1} {:>10.2} {:>12.0} {:>14.1}",
            format!("{label} ({files})"),
            mib,
            secs,
            mib / secs,
            peak_rss_kib() as f64 / 1024.0
        );
    }
    println!("peak RSS is the process high-water mark: if it barely moves from the small to the");
    println!("large context, memory does not grow with context size.");
}
