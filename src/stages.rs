//! Where the time goes: each stage of a pack or unpack (the walk, the compressors, the
//! writer, ...) measures, per thread, the time spent on each kind of work and the time
//! spent waiting, by reason. Reports carry the sums per stage, so that a slow run says
//! which stage was short of work and why, on any machine (docs/JSON.md, `-v`).

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// One thread's clock: the time since the last lap goes to the activity named.
#[derive(Debug)]
pub struct Clock {
    last: Instant,
    work: Vec<(&'static str, Duration)>,
    wait: Vec<(&'static str, Duration)>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::start()
    }
}

fn add(to: &mut Vec<(&'static str, Duration)>, name: &'static str, d: Duration) {
    match to.iter_mut().find(|(n, _)| *n == name) {
        Some((_, total)) => *total += d,
        None => to.push((name, d)),
    }
}

impl Clock {
    /// A clock started now.
    pub fn start() -> Clock {
        Clock {
            last: Instant::now(),
            work: Vec::new(),
            wait: Vec::new(),
        }
    }

    /// The time since the last lap was spent working at `what`.
    pub fn work(&mut self, what: &'static str) {
        let now = Instant::now();
        add(&mut self.work, what, now - self.last);
        self.last = now;
    }

    /// The time since the last lap was spent waiting, for `why`.
    pub fn wait(&mut self, why: &'static str) {
        let now = Instant::now();
        add(&mut self.wait, why, now - self.last);
        self.last = now;
    }

    /// Moves `d` of the time counted as work at `what` to waiting for `why`: for a
    /// wait measured inside a step (a blocking send deep in the work).
    pub fn reclassify(&mut self, what: &'static str, why: &'static str, d: Duration) {
        let d = match self.work.iter_mut().find(|(n, _)| *n == what) {
            Some((_, total)) => {
                let d = d.min(*total);
                *total -= d;
                d
            }
            None => Duration::ZERO,
        };
        add(&mut self.wait, why, d);
    }
}

/// What the threads of one stage did, summed over its threads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The stage: `walk`, `compress`, `write` or `index` for a pack; `prepare`,
    /// `data` or `finish` for an unpack.
    pub stage: String,
    /// Threads that ran it.
    pub threads: usize,
    /// Seconds spent working, all threads together.
    pub busy_s: f64,
    /// Seconds spent waiting, all threads together.
    pub wait_s: f64,
    /// `busy_s` over `threads` times the whole run's wall time: 1.0 means every thread
    /// of the stage worked all the time.
    pub utilization: f64,
    /// Seconds of work by kind (`read`, `hash`, `compress`, ...).
    pub work: Vec<Part>,
    /// Seconds of waiting by reason (`no_plan`, `no_slot`, `reads`, ...).
    pub waits: Vec<Part>,
}

/// Seconds spent on one kind of work or waiting for one reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// What it was.
    pub name: String,
    /// Seconds, all threads together.
    pub seconds: f64,
}

fn parts(list: &[(&'static str, Duration)]) -> Vec<Part> {
    list.iter()
        .map(|(name, d)| Part {
            name: (*name).into(),
            seconds: d.as_secs_f64(),
        })
        .collect()
}

impl Stage {
    /// The stage `name`, from the clocks of its threads.
    pub fn of(name: &str, clocks: &[Clock]) -> Stage {
        let mut total = Clock::start();
        for c in clocks {
            for &(n, d) in &c.work {
                add(&mut total.work, n, d);
            }
            for &(n, d) in &c.wait {
                add(&mut total.wait, n, d);
            }
        }
        let sum = |l: &[(&str, Duration)]| l.iter().fold(0.0, |t, (_, d)| t + d.as_secs_f64());
        Stage {
            stage: name.into(),
            threads: clocks.len(),
            busy_s: sum(&total.work),
            wait_s: sum(&total.wait),
            utilization: 0.0,
            work: parts(&total.work),
            waits: parts(&total.wait),
        }
    }

    /// One line for a log: threads, utilization, work and waits by kind.
    pub fn line(&self) -> String {
        let list = |parts: &[Part]| {
            parts
                .iter()
                .filter(|p| p.seconds >= 0.0005)
                .map(|p| format!("{} {:.3}", p.name, p.seconds))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{:<8} {:>3} threads, {:>5.1}% busy: work {:.3} s ({}); waiting {:.3} s ({})",
            self.stage,
            self.threads,
            self.utilization * 100.0,
            self.busy_s,
            list(&self.work),
            self.wait_s,
            list(&self.waits)
        )
    }
}

/// Fills in each stage's utilization for a run of `wall` seconds.
pub fn conclude(stages: &mut [Stage], wall: Duration) {
    let wall = wall.as_secs_f64().max(1e-9);
    for s in stages {
        s.utilization = s.busy_s / (s.threads.max(1) as f64 * wall);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_go_to_work_and_waits_by_name_and_stages_sum_threads() {
        let mut a = Clock::start();
        std::thread::sleep(Duration::from_millis(20));
        a.work("compress");
        std::thread::sleep(Duration::from_millis(10));
        a.wait("no_plan");
        std::thread::sleep(Duration::from_millis(10));
        a.work("compress");
        let mut b = Clock::start();
        std::thread::sleep(Duration::from_millis(10));
        b.work("hash");
        b.reclassify("hash", "reads", Duration::from_millis(5));
        let mut s = vec![Stage::of("compress", &[a, b])];
        conclude(&mut s, Duration::from_millis(40));
        let s = &s[0];
        assert_eq!(s.threads, 2);
        let secs = |parts: &[Part], n: &str| {
            parts
                .iter()
                .find(|p| p.name == n)
                .map_or(0.0, |p| p.seconds)
        };
        assert!(secs(&s.work, "compress") >= 0.030, "{s:?}");
        assert!(secs(&s.waits, "no_plan") >= 0.010, "{s:?}");
        assert!((secs(&s.waits, "reads") - 0.005).abs() < 1e-6, "{s:?}");
        // hash: the 10 ms slept less the 5 ms said to be waiting.
        let hash = secs(&s.work, "hash");
        assert!((0.004..0.05).contains(&hash), "{s:?}");
        assert!(s.utilization > 0.4 && s.utilization < 1.5, "{s:?}");
        assert!(s.line().contains("compress"));
    }
}
