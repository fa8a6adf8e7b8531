//! After an installation: what the boot that followed says (ota-agent.md §6.2 step 8). The
//! activated slot running after a reboot is on trial until `mark-good` commits it (raising the
//! security floor, S6); the previous slot running after a reboot means the bootloader fell back
//! (`RolledBack`, floor unchanged); `mark-bad` gives the running slot up.

use super::state::{HistoryRecord, Phase, State};
use super::update::Agent;
use crate::error::{Error, Result};

impl Agent<'_> {
    /// Moves the journal on from what this boot shows; saves the state when it changed.
    pub(crate) fn reconcile(&mut self, state: &mut State) -> Result<()> {
        let Some(j) = state.journal.as_mut() else {
            return Ok(());
        };
        let rebooted = j.activated_boot_id.as_deref() != Some(self.boot_id.as_str());
        match j.phase {
            Phase::Activated if rebooted && self.booted == j.target => {
                log::info!(
                    "running release {} on trial in slot {}",
                    j.release,
                    j.target
                );
                j.phase = Phase::Trial;
            }
            Phase::Activated | Phase::Trial if rebooted && self.booted != j.target => {
                log::warn!(
                    "the bootloader fell back to slot {}: release {} in slot {} failed to boot",
                    self.booted,
                    j.release,
                    j.target
                );
                j.phase = Phase::RolledBack;
                j.error = Some(format!("the bootloader fell back to slot {}", self.booted));
                let target = j.target.clone();
                self.boot.mark_bad(&target).map_err(Error::boot)?;
                mark_slots(state, &target, "bad");
            }
            _ => return Ok(()),
        }
        self.states.save(state)
    }

    /// `mark-good`: the running slot works. Commits a release on trial: the bootloader keeps
    /// booting it, and the security floor rises to its security version (S6).
    pub(crate) fn mark_good(&mut self) -> Result<String> {
        let mut state = self.states.load()?;
        self.reconcile(&mut state)?;
        let booted = self.booted.clone();
        self.boot.mark_good(&booted).map_err(Error::boot)?;
        let message = match state.journal.as_mut() {
            Some(j) if j.phase == Phase::Trial && j.target == booted => {
                let mut history = state.history.to_history();
                history.commit_security_version(j.security_version);
                state.history = HistoryRecord::from_history(history);
                j.phase = Phase::Committed;
                let message = format!("release {} committed in slot {booted}", j.release);
                mark_slots(&mut state, &booted, "ok");
                message
            }
            _ => format!("slot {booted} marked good"),
        };
        self.states.save(&state)?;
        Ok(message)
    }

    /// `mark-bad`: the running slot does not work; the bootloader stops choosing it.
    pub(crate) fn mark_bad(&mut self) -> Result<String> {
        let mut state = self.states.load()?;
        self.reconcile(&mut state)?;
        let booted = self.booted.clone();
        self.boot.mark_bad(&booted).map_err(Error::boot)?;
        if let Some(j) = state.journal.as_mut()
            && j.target == booted
            && matches!(j.phase, Phase::Trial | Phase::Activated)
        {
            j.phase = Phase::Failed;
            j.error = Some("marked bad".into());
        }
        mark_slots(&mut state, &booted, "bad");
        self.states.save(&state)?;
        Ok(format!("slot {booted} marked bad"))
    }
}

/// Sets the status of every slot record of a group.
fn mark_slots(state: &mut State, bootname: &str, status: &str) {
    for record in state
        .slots
        .entry(bootname.to_owned())
        .or_default()
        .values_mut()
    {
        record.status = status.into();
    }
}
