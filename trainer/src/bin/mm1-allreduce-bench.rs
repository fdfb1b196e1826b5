//! Gradient all-reduce benchmark (bytes/s), e.g. on 2 local ranks:
//!
//! ```text
//! cargo build -p mm1-trainer --features mpi --bin mm1-allreduce-bench
//! mpirun -n 2 target/debug/mm1-allreduce-bench --mb 1,16,64 --iters 10
//! ```
//!
//! Times `DataParallel`-style bucketed all-reduces of f32 buffers through the [`Collective`]
//! the launcher implies, with and without the failure detector's check-in, and prints
//! algorithm bandwidth (buffer bytes / time) and bus bandwidth (× 2(n−1)/n, NCCL's
//! convention) on rank 0. A benchmark, not a test: it asserts nothing about time.

use std::time::Instant;

use mm1_trainer::parallel::{Collective, FailureConfig, ReduceOp, init_collective};

fn main() {
    if let Err(e) = run() {
        eprintln!("mm1-allreduce-bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut sizes_mb = vec![1.0, 16.0, 64.0];
    let mut iters = 10usize;
    let mut timeout_s = 60.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--mb" => {
                sizes_mb = value()?
                    .split(',')
                    .map(|s| s.parse::<f64>().map_err(|e| format!("--mb {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--iters" => iters = value()?.parse().map_err(|e| format!("--iters: {e}"))?,
            "--timeout-s" => timeout_s = value()?.parse().map_err(|e| format!("--timeout-s: {e}"))?,
            "-h" | "--help" => {
                println!("mm1-allreduce-bench [--mb 1,16,64] [--iters 10] [--timeout-s 60]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let coll =
        init_collective(FailureConfig { collective_timeout_s: timeout_s }).map_err(|e| e.to_string())?;
    let n = coll.world_size();
    if coll.rank() == 0 {
        println!(
            "all-reduce (sum, f32) over {n} rank(s), {iters} iterations, check-in timeout {timeout_s} s"
        );
        println!("{:>10} {:>12} {:>14} {:>14}", "MB", "ms/call", "algbw GB/s", "busbw GB/s");
    }
    for mb in sizes_mb {
        let elems = ((mb * 1e6) / 4.0).round().max(1.0) as usize;
        let secs = time_all_reduce(coll.as_ref(), elems, iters)?;
        if coll.rank() == 0 {
            let bytes = (elems * 4) as f64;
            let algbw = bytes / secs;
            let busbw = algbw * 2.0 * (n as f64 - 1.0) / n as f64;
            println!(
                "{:>10.1} {:>12.3} {:>14.3} {:>14.3}",
                bytes / 1e6,
                secs * 1e3,
                algbw / 1e9,
                busbw / 1e9
            );
        }
    }
    Ok(())
}

/// Median seconds per all-reduce of `elems` values (one warm-up call).
fn time_all_reduce(coll: &dyn Collective, elems: usize, iters: usize) -> Result<f64, String> {
    let mut buf = vec![1.0f32; elems];
    buf = coll.all_reduce(buf, ReduceOp::Sum).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters.max(1) {
        coll.barrier().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        buf = coll.all_reduce(buf, ReduceOp::Sum).map_err(|e| e.to_string())?;
        times.push(t0.elapsed().as_secs_f64());
        // Keep values bounded (sum over n ranks grows n× per call).
        let inv = 1.0 / coll.world_size() as f32;
        buf.iter_mut().for_each(|v| *v *= inv);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
