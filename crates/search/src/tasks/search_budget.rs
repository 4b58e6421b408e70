//! How much a search has to decide with, said before it starts (issue 24): the budget follows
//! the data set's size, and a budget too small to move α and β is refused.
//!
//! - `budget_steps = N` (optional) sizes the search from the data: an epoch is one pass over
//!   trainA (at most N / 10 steps, so that there are at least ten epochs to schedule), the
//!   epochs are as many as N steps need, and the first `warmup_fraction` of them (0.4 by
//!   default, the demo's 4 of 10; the paper waits 20 of 40) train the weights alone.
//! - Without it, `epochs`, `arch_start_epoch` and `steps_per_epoch` say the same by hand.
//!
//! Either way the search logs the plan in words (how many weight-only steps, how many
//! architecture steps, how often each half of the data is seen) and refuses to start when fewer
//! than `arch.min_steps` steps would update α and β: Adam moves each logit by at most about its
//! learning rate per step, so a few dozen steps leave the softmax near uniform and the decoded
//! cell a coin toss (docs/pipeline.md, "How α and β learn").

use anyhow::{bail, Result};
use serde::Serialize;

use crate::run_config::SearchRunConfig;

/// The schedule a search will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub train_a: usize,
    pub train_b: usize,
    /// Images per step, every rank together.
    pub batch: usize,
    pub steps_per_epoch: usize,
    pub epochs: usize,
    pub arch_start_epoch: usize,
    pub warmup_steps: usize,
    pub arch_steps: usize,
}

impl Budget {
    /// The schedule of `config` on trainA and trainB of these sizes, with `batches_a` batches in
    /// one pass over this rank's trainA and `batch` images per step on all ranks together.
    pub fn plan(config: &SearchRunConfig, train_a: usize, train_b: usize, batches_a: usize, batch: usize) -> Budget {
        let batches_a = batches_a.max(1);
        let (steps_per_epoch, epochs, arch_start_epoch) = match config.budget_steps {
            Some(total) => {
                let per_epoch = batches_a.min(total.div_ceil(10)).max(1);
                let epochs = total.div_ceil(per_epoch).max(2);
                let start = ((epochs as f64 * config.warmup_fraction).round() as usize).clamp(1, epochs - 1);
                (per_epoch, epochs, start)
            }
            None => {
                let per_epoch = config.steps_per_epoch.map_or(batches_a, |s| s.min(batches_a));
                (per_epoch, config.epochs, config.arch_start_epoch)
            }
        };
        Budget {
            train_a,
            train_b,
            batch,
            steps_per_epoch,
            epochs,
            arch_start_epoch,
            warmup_steps: arch_start_epoch * steps_per_epoch,
            arch_steps: (epochs - arch_start_epoch.min(epochs)) * steps_per_epoch,
        }
    }

    /// The plan in words.
    pub fn describe(&self) -> String {
        let passes = |steps: usize, images: usize| (steps * self.batch) as f64 / images.max(1) as f64;
        format!(
            "{} training images: {} train the weights (trainA), {} the architecture (trainB). {} epochs of {} steps of {} images: \
             {} weight-only warm-up steps ({:.1} passes over trainA), then {} steps that update both \
             ({:.1} passes over trainB).",
            self.train_a + self.train_b,
            self.train_a,
            self.train_b,
            self.epochs,
            self.steps_per_epoch,
            self.batch,
            self.warmup_steps,
            passes(self.warmup_steps, self.train_a),
            self.arch_steps,
            passes(self.arch_steps, self.train_b),
        )
    }

    /// Refuses a budget with fewer than `min_steps` architecture steps, saying what to change.
    pub fn check(&self, min_steps: usize) -> Result<()> {
        if self.arch_steps >= min_steps {
            return Ok(());
        }
        bail!(
            "this search is too short to decide: {} Only {} steps would update α and β, fewer than arch.min_steps = {min_steps}; \
             with so few, the op weights stay near uniform and the decoded cell is a coin toss. Give it at least \
             {min_steps} architecture steps: raise `epochs` (or lower `arch_start_epoch`), or set `budget_steps` to about {} \
             to size the search from the data; or set `arch.min_steps` lower to run it anyway.",
            self.describe(),
            self.arch_steps,
            ((min_steps as f64) / 0.6).ceil() as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's budget passes; a 24-step search is refused with a message naming the key;
    /// `budget_steps` sizes the epochs from the data.
    #[test]
    fn budgets_follow_the_data_and_small_ones_are_refused() {
        let demo: SearchRunConfig =
            crate::config::load_text(crate::tasks::demo::SEARCH_CONFIG, std::path::Path::new("demo"), &[]).unwrap();
        let b = Budget::plan(&demo, 32, 32, 8, 4);
        assert_eq!((b.steps_per_epoch, b.epochs, b.warmup_steps, b.arch_steps), (8, 10, 32, 48));
        assert!(b.check(40).is_ok());
        let short = SearchRunConfig { epochs: 3, arch_start_epoch: 1, ..demo.clone() };
        let e = Budget::plan(&short, 32, 32, 8, 4).check(40).unwrap_err().to_string();
        assert!(
            e.contains("16 steps would update") && e.contains("arch.min_steps = 40") && e.contains("budget_steps"),
            "{e}"
        );
        // 1000 trainA images in batches of 4: an epoch would be 250 steps; a budget of 300
        // steps makes ten epochs of 30, four of warm-up.
        let sized = SearchRunConfig { budget_steps: Some(300), ..demo };
        let b = Budget::plan(&sized, 1000, 1000, 250, 4);
        assert_eq!((b.steps_per_epoch, b.epochs, b.arch_start_epoch, b.arch_steps), (30, 10, 4, 180));
        // A small data set: 8 batches per pass, 100 steps: 13 epochs of 8, 5 of warm-up.
        let b = Budget::plan(&sized_with(100), 32, 32, 8, 4);
        assert_eq!((b.steps_per_epoch, b.epochs, b.arch_start_epoch), (8, 13, 5));
        assert!(b.describe().contains("64 training images"));
    }

    fn sized_with(steps: usize) -> SearchRunConfig {
        SearchRunConfig { budget_steps: Some(steps), ..Default::default() }
    }
}
