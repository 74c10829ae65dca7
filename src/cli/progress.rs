//! A progress bar that appears only when a run takes longer than a second.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const SHOW_AFTER: Duration = Duration::from_secs(1);
const STEPS: u64 = 1000;

pub struct Progress {
    label: String,
    start: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(label: impl Into<String>) -> Self {
        Progress {
            label: label.into(),
            start: Instant::now(),
            bar: None,
        }
    }

    /// `fraction` of the work is done.
    pub fn update(&mut self, fraction: f64) {
        if self.bar.is_none() && self.start.elapsed() >= SHOW_AFTER {
            let bar = ProgressBar::new(STEPS);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {percent:>3}% ({elapsed}, ~{eta} left)",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_message(self.label.clone());
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position((fraction.clamp(0.0, 1.0) * STEPS as f64) as u64);
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
