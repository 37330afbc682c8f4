//! Progress reporting hook. The scanner calls a [`Progress`]; the CLI picks
//! [`TerminalProgress`] (an indicatif bar on stderr that stays hidden when
//! stderr is not a terminal) or [`NoProgress`].

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives progress from a scan. Called from several threads at once.
pub trait Progress: Send + Sync {
    /// A phase starts: `what` is `"files"` or `"commits"`; `total` is known
    /// for history scans.
    fn begin(&self, what: &str, total: Option<u64>) {
        let _ = (what, total);
    }

    /// `items` more files (or commits) done, `bytes` more bytes scanned.
    fn advance(&self, items: u64, bytes: u64) {
        let _ = (items, bytes);
    }

    /// The scan is over.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// An indicatif spinner (file scans) or bar (history scans) on stderr,
/// drawn only when stderr is a terminal.
#[derive(Debug)]
pub struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    /// Draws on stderr if it is a terminal, otherwise stays hidden.
    pub fn stderr() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        TerminalProgress {
            bar: ProgressBar::with_draw_target(None, target),
        }
    }

    /// Never draws (for tests of the hook itself).
    pub fn hidden() -> Self {
        TerminalProgress {
            bar: ProgressBar::hidden(),
        }
    }
}

impl Progress for TerminalProgress {
    fn begin(&self, what: &str, total: Option<u64>) {
        let style = match total {
            Some(total) => {
                self.bar.set_length(total);
                ProgressStyle::with_template(
                    "{spinner} scanning {msg} {bar:30} {pos}/{len} ({elapsed}, {per_sec})",
                )
            }
            None => ProgressStyle::with_template(
                "{spinner} scanning {msg}: {pos} ({elapsed}, {per_sec})",
            ),
        };
        if let Ok(style) = style {
            self.bar.set_style(style);
        }
        self.bar.set_message(what.to_owned());
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    fn advance(&self, items: u64, _bytes: u64) {
        self.bar.inc(items);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
