//! `otasync status`: what the device runs, what each slot holds, where an installation is.
//! The JSON field names are stable and documented in README.md.

use super::state::Phase;
use super::update::Agent;
use crate::error::Result;
use serde_json::{Value, json};

impl Agent<'_> {
    /// The status as JSON.
    pub(crate) fn status(&mut self) -> Result<Value> {
        let mut state = self.states.load()?;
        self.reconcile(&mut state)?;
        let bootloader = match self.boot.state() {
            Ok(boot) => json!({
                "order": boot.order,
                "slots": boot.slots.iter().map(|s| json!({
                    "bootname": s.bootname,
                    "in_order": s.in_order,
                    "attempts_left": s.attempts_left,
                    "good": s.good,
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let slots: Vec<Value> = self
            .config
            .slots
            .iter()
            .map(|slot| {
                let record = state
                    .slots
                    .get(&slot.bootname)
                    .and_then(|classes| classes.get(&slot.class));
                json!({
                    "class": slot.class,
                    "bootname": slot.bootname,
                    "device": slot.device,
                    "booted": slot.bootname == self.booted,
                    "release": record.map(|r| r.release.clone()),
                    "version": record.map(|r| r.version),
                    "status": record.map_or("unknown".into(), |r| r.status.clone()),
                })
            })
            .collect();
        let journal = state.journal.as_ref().map(|j| {
            json!({
                "phase": j.phase,
                "release": j.release,
                "version": j.version,
                "security_version": j.security_version,
                "target": j.target,
                "attempts": j.attempts,
                "error": j.error,
                "manifest_sha256": j.manifest_sha256,
            })
        });
        let t = &state.transfer;
        let phase = state.journal.as_ref().map_or("idle".into(), |j| {
            serde_json::to_value(j.phase).unwrap_or(Value::Null)
        });
        let installing = state
            .journal
            .as_ref()
            .is_some_and(|j| matches!(j.phase, Phase::Writing | Phase::Verified));
        Ok(json!({
            "booted": self.booted,
            "bootloader": bootloader,
            "slots": slots,
            "history": {
                "metadata_version": state.history.metadata_version,
                "security_floor": state.history.security_floor,
                "last_issued_at": state.history.last_issued_at,
            },
            "journal": journal,
            "last_result": state.last_result,
            "progress": {
                "phase": phase,
                "installing": installing,
                "bytes_total": t.bytes_total,
                "bytes_done": t.bytes_done,
                "bytes_from_seeds": t.bytes_from_seeds,
                "bytes_in_place": t.bytes_in_place,
                "bytes_from_network": t.bytes_from_network,
                "bytes_downloaded": t.bytes_downloaded,
                "chunks_fetched": t.chunks_fetched,
                "rechecks": t.rechecks,
            },
        }))
    }
}
