//! Stopping a run after too many non-finite steps in a row (a skipped step is counted).

use super::StepReport;

/// Stops the run after too many non-finite steps in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFiniteGuard {
    pub max_in_a_row: u64,
    pub in_a_row: u64,
    pub total: u64,
}

impl NonFiniteGuard {
    /// Record one step; `Err` with the message to stop on when the limit is reached.
    pub fn record(&mut self, step: u64, report: &StepReport) -> Result<(), String> {
        if report.applied {
            self.in_a_row = 0;
            return Ok(());
        }
        self.in_a_row += 1;
        self.total += 1;
        if self.in_a_row >= self.max_in_a_row {
            return Err(format!(
                "stopping at step {step}: {} steps in a row had a NaN/Inf loss or gradient \
                 (train.max_nonfinite_in_a_row = {}; last loss {}, grad norm {}); \
                 lower optim.lr, check the data, or resume from the last checkpoint",
                self.in_a_row, self.max_in_a_row, report.loss, report.grad_norm
            ));
        }
        Ok(())
    }
}
