//! Progress on stderr while a run goes on.
//!
//! On a terminal one line — done/total, percentage, failures so far and the group running — is
//! redrawn in place, and each FAIL or Error is printed above it as it happens. When stderr is
//! not a terminal (CI logs) the same events are plain lines: one per group started and one per
//! failure. `-q` prints nothing here; `-v` adds every request and answer (credentials masked).

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::console::{exchange, paint};
use crate::plan::PlanNode;
use crate::redact::Redactor;
use crate::results::{CaseResult, Status};
use crate::run::Observer;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A line redrawn in place (stderr is a terminal).
    Live,
    /// Plain lines (logs, pipes).
    Lines,
    /// Nothing (`-q`).
    Quiet,
}

/// The run's progress reporter.
pub struct Progress {
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    mode: Mode,
    verbose: bool,
    color: bool,
    width: usize,
    redactor: Redactor,
    /// The group running last, guarded with the terminal so lines never interleave.
    current: Mutex<String>,
}

impl Progress {
    /// A reporter for `total` planned tests.
    pub fn new(total: usize, mode: Mode, verbose: bool, color: bool, redactor: Redactor) -> Self {
        // No terminal-size call without libc: $COLUMNS when the shell exports it, else 80.
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .unwrap_or(80)
            .clamp(20, 500);
        Progress {
            total,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            mode,
            verbose: verbose && mode != Mode::Quiet,
            color,
            width,
            redactor,
            current: Mutex::new(String::new()),
        }
    }

    /// Removes the live line once the run is over.
    pub fn finish(&self) {
        if self.mode == Mode::Live {
            let _guard = self.current.lock();
            let mut err = std::io::stderr();
            let _ = err.write_all(b"\r\x1b[2K");
            let _ = err.flush();
        }
    }

    /// The live line, cut to the terminal width so it never wraps (a wrapped line cannot be
    /// redrawn in place).
    fn live_line(&self, group: &str) -> String {
        let done = self.done.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        let head = format!(
            "[{done:>w$}/{}] {pct:>3}% ",
            self.total,
            w = digits(self.total)
        );
        let fails = if failed > 0 {
            format!("{failed} failed ")
        } else {
            String::new()
        };
        let room = self
            .width
            .saturating_sub(1 + head.chars().count() + fails.chars().count());
        let group = if group.chars().count() > room {
            let tail: String = group
                .chars()
                .rev()
                .take(room.saturating_sub(1))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("…{tail}")
        } else {
            group.to_string()
        };
        let fails = if self.color && failed > 0 {
            format!("\x1b[31m{fails}\x1b[0m")
        } else {
            fails
        };
        format!("{head}{fails}{group}")
    }

    /// Prints permanent text; on a terminal the live line is cleared first and redrawn after.
    fn emit(&self, text: &str) {
        let Ok(current) = self.current.lock() else {
            return;
        };
        let mut err = std::io::stderr().lock();
        if self.mode == Mode::Live {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = err.write_all(self.redactor.scrub(text).as_bytes());
        if self.mode == Mode::Live {
            let _ = write!(err, "{}", self.live_line(&current));
        }
        let _ = err.flush();
    }

    fn redraw(&self) {
        if self.mode != Mode::Live {
            return;
        }
        let Ok(current) = self.current.lock() else {
            return;
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", self.live_line(&current));
        let _ = err.flush();
    }
}

impl Observer for Progress {
    fn group_started(&self, node: &PlanNode<'_>) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Live => {
                if let Ok(mut c) = self.current.lock() {
                    c.clone_from(&node.id);
                }
                self.redraw();
            }
            // Plain logs get the upper two levels of the tree, not every nested group.
            Mode::Lines if node.id.matches('/').count() <= 1 && !node.id.is_empty() => {
                let done = self.done.load(Ordering::Relaxed);
                self.emit(&format!("[{done}/{}] {}\n", self.total, node.id));
            }
            Mode::Lines => {}
        }
    }

    fn case_finished(&self, case: &CaseResult) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let bad = matches!(case.status, Status::Fail | Status::Error);
        if bad {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.mode == Mode::Quiet {
            return;
        }
        if self.mode == Mode::Live {
            // The group of the test just done: right again once a nested group has ended.
            if let Ok(mut c) = self.current.lock() {
                let group = case
                    .id
                    .rsplit_once('/')
                    .map_or(case.id.as_str(), |(g, _)| g);
                if *c != group {
                    *c = group.to_string();
                }
            }
        }
        let mut text = String::new();
        if self.verbose {
            text.push_str(&format!(
                "── {} {}  ({})\n",
                paint(case.status, self.color),
                case.id,
                case.source
            ));
            for e in &case.exchanges {
                text.push_str(&exchange(e));
                text.push('\n');
            }
        }
        if bad {
            let reason = super::shorten_queries(case.reason.as_deref().unwrap_or(""));
            let at = case
                .failures
                .first()
                .map_or(case.source.as_str(), |f| f.source.as_str());
            text.push_str(&format!(
                "{} {}: {reason}  ({at})\n",
                paint(case.status, self.color),
                case.id
            ));
        }
        if text.is_empty() {
            self.redraw();
        } else {
            self.emit(&text);
        }
    }
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_fits_the_terminal() {
        let mut p = Progress::new(900, Mode::Live, false, false, Redactor::default());
        p.width = 80;
        p.done.store(45, Ordering::Relaxed);
        p.failed.store(2, Ordering::Relaxed);
        let line = p.live_line(&"very long group name/".repeat(20));
        assert!(line.starts_with("[ 45/900]   5% 2 failed …"), "{line}");
        assert!(line.chars().count() < p.width, "{line}");
        assert!(line.ends_with("group name/"), "{line}");
        let short = p.live_line("image/push");
        assert!(short.ends_with("2 failed image/push"), "{short}");
    }
}
