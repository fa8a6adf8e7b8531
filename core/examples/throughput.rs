//! Single-core throughput of the core primitives on a file held in memory:
//! `cargo run --release -p otasync-core --example throughput -- FILE`.
//! Prints MB/s (10^6 bytes per second) for chunking alone, each digest alone, and chunking
//! plus chunk ids, the work `make` does per byte before compression.

use otasync_core::{ChunkSizes, Chunker, DigestAlgorithm};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE");
    let data = std::fs::read(&path).expect("reading input");
    let sizes = ChunkSizes::default();
    let mb = data.len() as f64 / 1e6;
    let report = |what: &str, f: &dyn Fn() -> usize| {
        let best = (0..3)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("{what:<32} {:>8.0} MB/s", mb / best);
    };
    let chunk_ends = || {
        let mut chunker = Chunker::new(sizes);
        let (mut pos, mut ends) = (0, Vec::new());
        while let Some(n) = chunker.scan(&data[pos..]) {
            pos += n;
            ends.push(pos);
        }
        ends.push(data.len());
        ends
    };
    report("chunking", &|| chunk_ends().len());
    for digest in [DigestAlgorithm::Sha512_256, DigestAlgorithm::Sha256] {
        report(&format!("{} (whole input)", digest.name()), &|| {
            digest.digest(&data).0[0] as usize
        });
        report(&format!("chunking + {} ids", digest.name()), &|| {
            let mut start = 0;
            chunk_ends()
                .into_iter()
                .map(|end| {
                    let id = digest.digest(&data[start..end]);
                    start = end;
                    id.0[0] as usize
                })
                .sum()
        });
    }
}
