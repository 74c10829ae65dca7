//! The message faults and link shapes this machine applies, compiled
//! against the hosted system's message kinds once they are known.

use std::collections::HashMap;

use crate::net::{CompiledFaults, LinkSpec, MessageFaults, Sampler};

/// This machine's side of one peer link.
#[derive(Default)]
pub(super) struct PeerLink {
    pub(super) spec: Option<LinkSpec>,
    pub(super) latency: Option<Sampler>,
    pub(super) faults: Option<CompiledFaults>,
    pub(super) out_down: bool,
    pub(super) in_down: bool,
}

/// The faults this machine applies, compiled against the hosted system's
/// message kinds once they are known.
#[derive(Default)]
pub(super) struct FaultPlan {
    pub(super) kinds: Option<&'static [&'static str]>,
    pub(super) machine_raw: MessageFaults,
    pub(super) machine: Option<CompiledFaults>,
    pub(super) links: HashMap<String, PeerLink>,
}

impl FaultPlan {
    pub(super) fn compile(&self, f: &MessageFaults) -> Result<Option<CompiledFaults>, String> {
        f.validate()?;
        match self.kinds {
            Some(kinds) if !f.is_none() => f.compile(kinds).map(Some).map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }

    pub(super) fn set_machine(&mut self, f: MessageFaults) -> Result<(), String> {
        self.machine = self.compile(&f)?;
        self.machine_raw = f;
        Ok(())
    }

    pub(super) fn set_link(&mut self, peer: &str, spec: Option<LinkSpec>) -> Result<(), String> {
        let (latency, faults) = match &spec {
            Some(s) => {
                s.latency.validate()?;
                let latency = (!s.latency.is_zero()).then(|| s.latency.sampler());
                (latency, self.compile(&s.faults)?)
            }
            None => (None, None),
        };
        let link = self.links.entry(peer.to_string()).or_default();
        (link.spec, link.latency, link.faults) = (spec, latency, faults);
        Ok(())
    }

    pub(super) fn set_kinds(&mut self, kinds: &'static [&'static str]) -> Result<(), String> {
        self.kinds = Some(kinds);
        self.machine = self.compile(&self.machine_raw.clone())?;
        let specs: Vec<(String, MessageFaults)> = self
            .links
            .iter()
            .filter_map(|(p, l)| l.spec.as_ref().map(|s| (p.clone(), s.faults.clone())))
            .collect();
        for (peer, faults) in specs {
            let compiled = self.compile(&faults)?;
            if let Some(l) = self.links.get_mut(&peer) {
                l.faults = compiled;
            }
        }
        Ok(())
    }
}
