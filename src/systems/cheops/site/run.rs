//! Running operations (and read-only `show` commands) on a resource's
//! backend, off the handler through the slow-work effect.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::super::block::{Operation, RunPlan, plan_run};
use super::super::doc::{Backend, Reply, Status};
use super::super::kv_backend::{CommandResult, Keyspace, execute};
use super::super::msg::CheopsMsg;
use super::super::shell;
use super::Site;
use crate::node::{Ctx, NodeId, Work, WorkId};

/// Who runs the commands of one piece of work.
enum Runner {
    Kv(Keyspace),
    Shell {
        dir: PathBuf,
        site: String,
    },
    /// The backend may not run here: every command is KO with the reason.
    Refused(String),
}

/// Commands of one run, executed off the handler.
struct RunWork {
    runner: Runner,
    resource: String,
    commands: Vec<(String, BTreeMap<String, Vec<u8>>)>,
}

struct RunDone {
    /// The keyspace after the run (kv only).
    keys: Option<Keyspace>,
    results: Vec<CommandResult>,
}

impl Work for RunWork {
    fn name(&self) -> &'static str {
        match self.runner {
            Runner::Kv(_) => "cheops-kv-run",
            _ => "cheops-shell-run",
        }
    }

    fn run(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        let RunWork {
            runner,
            resource,
            commands,
        } = *self;
        let done = match runner {
            Runner::Kv(mut keys) => {
                let results = commands
                    .iter()
                    .map(|(c, _)| execute(&mut keys, c))
                    .collect();
                RunDone {
                    keys: Some(keys),
                    results,
                }
            }
            Runner::Shell { dir, site } => {
                let cwd = shell::resource_dir(&dir, &resource);
                let env = [
                    ("CHEOPS_SITE", site.as_str()),
                    ("CHEOPS_ID", resource.as_str()),
                ];
                let results = commands
                    .iter()
                    .map(|(c, files)| shell::run(&cwd, c, files, &env))
                    .collect();
                RunDone {
                    keys: None,
                    results,
                }
            }
            Runner::Refused(why) => RunDone {
                keys: None,
                results: commands
                    .iter()
                    .map(|_| CommandResult {
                        ok: false,
                        output: why.clone(),
                    })
                    .collect(),
            },
        };
        Box::new(done)
    }

    fn simulated_duration(&self) -> Duration {
        Duration::from_millis(2 + self.commands.len() as u64)
    }
}

/// Work in progress.
pub(super) enum Job {
    Run {
        resource: String,
        plan: RunPlan,
        ops: Vec<Operation>,
    },
    /// A read-only command; its answer goes to `to` under `ask`.
    Show { to: NodeId, ask: u64 },
}

impl Site {
    fn runner(&self, ctx: &Ctx<'_, CheopsMsg>, backend: Backend, keys: Keyspace) -> Runner {
        match (backend, self.shell_refused(ctx.mode())) {
            (Backend::Kv, _) => Runner::Kv(keys),
            (Backend::Shell, Some(why)) => Runner::Refused(why),
            (Backend::Shell, None) => Runner::Shell {
                dir: if self.shell_dir.is_empty() {
                    std::env::temp_dir().join(format!("cheops-{}", self.me))
                } else {
                    PathBuf::from(&self.shell_dir)
                },
                site: self.me.clone(),
            },
        }
    }

    /// Starts a run of what the block needs here, one run per resource
    /// at a time.
    pub(super) fn maybe_run(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, id: &str) {
        if self.busy.contains(id) {
            return;
        }
        let Some(local) = self.resources.get(id) else {
            return;
        };
        let Some(doc) = &local.doc else { return };
        let plan = plan_run(&doc.ops, &local.applied, &doc.config);
        if plan.run.is_empty() {
            return;
        }
        let ops: Vec<Operation> = plan.run.iter().map(|&i| doc.ops[i].clone()).collect();
        let keys = if plan.restore_base {
            local.base.clone()
        } else {
            local.state.clone()
        };
        let work = RunWork {
            runner: self.runner(ctx, doc.backend, keys),
            resource: id.to_string(),
            commands: ops
                .iter()
                .map(|o| (o.command.clone(), o.files.clone()))
                .collect(),
        };
        let w = ctx.start_work(work);
        self.busy.insert(id.to_string());
        self.running.insert(
            w,
            Job::Run {
                resource: id.to_string(),
                plan,
                ops,
            },
        );
    }

    /// Runs a read-only command here: on a copy of the keyspace (kv) or by
    /// `sh` in the resource's directory, `__ID__` replaced by the resource
    /// id as the original's `show_local` does.
    pub(super) fn show_here(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        to: NodeId,
        ask: u64,
        resource: &str,
        command: &str,
    ) {
        let (backend, keys) = match self.resources.get(resource).and_then(|l| {
            let d = l.doc.as_ref()?;
            Some((d.backend, l.state.clone()))
        }) {
            Some(found) => found,
            // A resource this site does not hold: the default backend.
            None if self.shell_refused(ctx.mode()).is_none() => (Backend::Shell, Keyspace::new()),
            None => (Backend::Kv, Keyspace::new()),
        };
        let work = RunWork {
            runner: self.runner(ctx, backend, keys),
            resource: resource.to_string(),
            commands: vec![(command.replace("__ID__", resource), BTreeMap::new())],
        };
        let w = ctx.start_work(work);
        self.running.insert(w, Job::Show { to, ask });
    }

    pub fn work_done(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        work: WorkId,
        output: Box<dyn std::any::Any + Send>,
    ) {
        let Some(job) = self.running.remove(&work) else {
            return;
        };
        let done = output.downcast::<RunDone>().ok();
        match (job, done) {
            (
                Job::Run {
                    resource,
                    plan,
                    ops,
                },
                done,
            ) => {
                self.busy.remove(&resource);
                if let Some(done) = done {
                    self.ran(ctx, resource, plan, ops, *done);
                }
            }
            (Job::Show { to, ask }, done) => {
                let first = done.and_then(|d| d.results.into_iter().next());
                let r = first.unwrap_or(CommandResult {
                    ok: false,
                    output: "no result".into(),
                });
                let reply = CheopsMsg::ShowReply {
                    ask,
                    site: self.me.clone(),
                    ok: r.ok,
                    output: r.output,
                };
                ctx.send(to, reply);
            }
        }
    }

    fn ran(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        id: String,
        plan: RunPlan,
        ops: Vec<Operation>,
        done: RunDone,
    ) {
        let now = ctx.now().as_nanos() as u64;
        let local = self.resources.get_mut(&id).expect("a running resource");
        if plan.new_base {
            local.base = local.state.clone();
        }
        if plan.new_base || plan.restore_base {
            local.applied.clear();
        }
        if let Some(keys) = done.keys {
            local.state = keys;
        }
        for (op, res) in ops.iter().zip(done.results) {
            local.applied.push(op.request_id.clone());
            let key = (op.request_id.clone(), self.me.clone());
            let runs = local.replies.get(&key).map_or(0, |r| r.runs) + 1;
            ctx.count(if res.ok { "runs_ok" } else { "runs_ko" }, 1);
            local.replies.insert(
                key,
                Reply {
                    resource: id.clone(),
                    site: self.me.clone(),
                    request_id: op.request_id.clone(),
                    status: if res.ok { Status::Ok } else { Status::Ko },
                    input: op.command.clone(),
                    output: res.output,
                    time_ns: now,
                    runs,
                },
            );
        }
        self.persist(ctx, &id);
        self.push(ctx, &id, true);
        self.maybe_run(ctx, &id);
    }
}
