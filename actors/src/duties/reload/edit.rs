//! Console edits of the `[[application]]` tree, and the console's view of the configuration.
//!
//! An edit runs inside the reload actor's `handle`, so it is serialised with SIGHUP, `ctl
//! reload` and every other edit by the mailbox: no two writers, no reload between the drift
//! check and the write.

use opcgw::config::edit::{
    commit_edit, content_hash, describe, editing_status, prepare_edit, ConfigEdit, ConfigView,
    EditError, EditOutcome, EditingStatus,
};
use opcgw::config::{self, KnobClass};

use super::ReloadState;
use crate::tree::messages::{ReloadOutcome, ReloadTrigger};

impl ReloadState {
    pub(super) fn edit(&mut self, edit: ConfigEdit) -> Result<EditOutcome, EditError> {
        if let Some(path) = &self.poisoned {
            return Err(EditError::Poisoned(path.clone()));
        }
        let status = editing_status(&self.config_path);
        if !status.enabled {
            return Err(EditError::Disabled(status.reason.unwrap_or_default()));
        }
        let current = config::read_config_text(&self.config_path)
            .map_err(|err| EditError::Io(err.to_string()))?;
        if self.loaded_hash != Some(content_hash(current.as_bytes())) {
            return Err(EditError::AmbientDrift);
        }
        let prepared = prepare_edit(
            &self.config_path,
            &current,
            &self.base.config.config,
            &self.env,
            &edit,
        )?;
        let path = self.config_path.clone();
        let write = self.write;
        let text = prepared.text;
        let result = commit_edit(&path, &current, &text, write, || {
            match self.reload_from(ReloadTrigger::Web, Some(text.clone())) {
                ReloadOutcome::Succeeded { generation, .. } => Ok(generation),
                ReloadOutcome::Failed { error, .. } => Err(error),
            }
        });
        match result {
            Ok(generation) => Ok(EditOutcome {
                generation,
                class: KnobClass::Topology,
            }),
            Err(err @ EditError::Poisoned(_)) => {
                self.poisoned = Some(path.display().to_string());
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    pub(super) fn describe(&self) -> ConfigView {
        let text = config::read_config_text(&self.config_path).ok();
        let editing = match &self.poisoned {
            Some(path) => EditingStatus {
                enabled: false,
                reason: Some(EditError::Poisoned(path.clone()).to_string()),
            },
            None => editing_status(&self.config_path),
        };
        describe(
            &self.config_path,
            text.as_deref(),
            &self.base.config.config,
            &self.env,
            self.base.config.generation,
            editing,
        )
    }
}
