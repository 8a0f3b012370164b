//! A fixed, reproducible CPU load for the "under load" throughput run: the bench binary itself,
//! started again in burner mode (`BENCH_CPU_BURNER=<duty>:<period ms>`), runs one thread per core
//! that busy-loops for `duty` of every period and sleeps the rest. Unlike "whatever else ran on
//! the machine", the same load is applied in every run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::params::LoadParams;

const BURNER_ENV: &str = "BENCH_CPU_BURNER";

/// In burner mode, burns CPU until killed and never returns; otherwise returns at once.
pub fn run_if_burner() {
    let Ok(spec) = std::env::var(BURNER_ENV) else {
        return;
    };
    let (duty, period_ms) = spec
        .split_once(':')
        .and_then(|(d, p)| Some((d.parse::<f64>().ok()?, p.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("{BURNER_ENV}={spec:?}: expected <duty>:<period ms>"));
    let period = Duration::from_millis(period_ms);
    let busy = period.mul_f64(duty.clamp(0.0, 1.0));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || burn(busy, period)))
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    std::process::exit(0);
}

fn burn(busy: Duration, period: Duration) {
    let mut spin: u64 = 0;
    loop {
        let started = Instant::now();
        while started.elapsed() < busy {
            spin = std::hint::black_box(spin.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        std::thread::sleep(period.saturating_sub(started.elapsed()));
    }
}

/// The running load; killed when dropped.
pub struct CpuLoad {
    child: Child,
}

impl CpuLoad {
    pub fn start(load: &LoadParams) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("bench binary: {e}"))?;
        let child = Command::new(exe)
            .env(
                BURNER_ENV,
                format!("{}:{}", load.duty, load.period.as_millis()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the CPU load: {e}"))?;
        Ok(Self { child })
    }

    /// CPU seconds the load has used so far (from /proc), to report what it really took.
    pub fn cpu_seconds(&self) -> Option<f64> {
        crate::operator_process::cpu_seconds_of(self.child.id())
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
