//! What a deploy asks of one node, each question one pipelined round of
//! `rex` calls whatever the number of modules. Speaks only through
//! [`crate::dist`]; interprets the answers into plain Rust values.

use crate::beam::{Md5, Module};
use crate::dist::term::{self, atom_term, binary, charlist, Encoded, EtfWriter, Term};
use crate::dist::{Call, CallError, Connection};
use std::time::Duration;

/// A process still running a module's old code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lingering {
    pub module: String,
    pub pid: String,
    pub name: Option<String>,
}

/// One node, as the deploy sees it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub conn: Connection,
    pub timeout: Duration,
}

/// A module the node would not load, and its reason in the node's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub module: String,
    pub reason: String,
}

impl Remote {
    pub fn node(&self) -> String {
        self.conn.node().to_string()
    }

    async fn each(
        &self,
        module: &str,
        function: &str,
        args: impl Fn(&str) -> Vec<Term>,
        names: &[&str],
    ) -> Vec<Result<Term, CallError>> {
        let calls = names
            .iter()
            .map(|n| Call::new(module, function, args(n)))
            .collect();
        self.conn.call_all(calls, self.timeout).await
    }

    /// The MD5 each module runs with, `None` where it is not loaded.
    pub async fn loaded_md5s(&self, modules: &[&str]) -> Result<Vec<Option<Md5>>, CallError> {
        let results = self
            .each(
                "erlang",
                "get_module_info",
                |m| vec![atom_term(m), atom_term("md5")],
                modules,
            )
            .await;
        results
            .into_iter()
            .map(|r| match r {
                Ok(t) => Ok(term::as_binary(&t)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .map(Md5)),
                // Not loaded: get_module_info raises badarg.
                Err(CallError::BadRpc { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// The object code the node's code path holds for each module, if any.
    pub async fn object_code(&self, modules: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CallError> {
        let results = self
            .each("code", "get_object_code", |m| vec![atom_term(m)], modules)
            .await;
        results
            .into_iter()
            .map(|r| {
                let t = r?;
                Ok(term::as_tuple_n::<3>(&t)
                    .ok()
                    .and_then(|[_, bin, _]| term::as_binary(bin).ok().map(<[u8]>::to_vec)))
            })
            .collect()
    }

    /// Whether each module has old code (a previous version still loaded).
    pub async fn has_old_code(&self, modules: &[&str]) -> Result<Vec<bool>, CallError> {
        self.booleans("erlang", "check_old_code", modules).await
    }

    /// `code:soft_purge/1`: `false` where processes still run the old code.
    pub async fn soft_purge(&self, modules: &[&str]) -> Result<Vec<bool>, CallError> {
        self.booleans("code", "soft_purge", modules).await
    }

    /// Soft-purges `modules`; returns those whose old code is still in use.
    pub async fn soft_purge_stuck<'a>(
        &self,
        modules: &[&'a str],
    ) -> Result<Vec<&'a str>, CallError> {
        let purged = self.soft_purge(modules).await?;
        Ok(modules
            .iter()
            .zip(purged)
            .filter(|(_, p)| !p)
            .map(|(m, _)| *m)
            .collect())
    }

    /// `code:purge/1`: `true` where processes were killed.
    pub async fn purge(&self, modules: &[&str]) -> Result<Vec<bool>, CallError> {
        self.booleans("code", "purge", modules).await
    }

    async fn booleans(
        &self,
        module: &str,
        function: &str,
        names: &[&str],
    ) -> Result<Vec<bool>, CallError> {
        self.each(module, function, |m| vec![atom_term(m)], names)
            .await
            .into_iter()
            .map(|r| r.map(|t| term::is_atom(&t, "true")))
            .collect()
    }

    /// The processes still executing old code of `modules`, with their
    /// registered names: one round for the process list, one for the
    /// checks, one for the names.
    pub async fn lingering(&self, modules: &[&str]) -> Result<Vec<Lingering>, CallError> {
        if modules.is_empty() {
            return Ok(Vec::new());
        }
        let procs = self
            .conn
            .call("erlang", "processes", vec![], self.timeout)
            .await?;
        let pids = term::as_list(&procs).unwrap_or_default();
        let mut pairs = Vec::new();
        let mut calls = Vec::new();
        for pid in &pids {
            for module in modules {
                pairs.push((pid.clone(), *module));
                calls.push(Call::new(
                    "erlang",
                    "check_process_code",
                    vec![pid.clone(), atom_term(module)],
                ));
            }
        }
        let checks = self.conn.call_all(calls, self.timeout).await;
        let mut found = Vec::new();
        for ((pid, module), check) in pairs.into_iter().zip(checks) {
            match check {
                Ok(t) if term::is_atom(&t, "true") => found.push((pid, module)),
                // A process that died meanwhile raises badarg: not lingering.
                Ok(_) | Err(CallError::BadRpc { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let names = self
            .conn
            .call_all(
                found
                    .iter()
                    .map(|(pid, _)| {
                        Call::new(
                            "erlang",
                            "process_info",
                            vec![pid.clone(), atom_term("registered_name")],
                        )
                    })
                    .collect(),
                self.timeout,
            )
            .await;
        Ok(found
            .into_iter()
            .zip(names)
            .map(|((pid, module), name)| Lingering {
                module: module.to_owned(),
                pid: show_pid(&pid),
                name: name.ok().and_then(|t| {
                    term::as_tuple_n::<2>(&t)
                        .ok()
                        .and_then(|[_, n]| term::as_atom(n).ok().map(str::to_owned))
                }),
            })
            .collect())
    }

    /// Loads all `modules` at once with `code:atomic_load/1`: all or none.
    /// `payload` is [`load_payload`] of the same modules, encoded once for
    /// every node that gets them.
    pub async fn atomic_load(
        &self,
        modules: &[&Module],
        payload: &Encoded,
    ) -> Result<Result<(), Vec<Refusal>>, CallError> {
        if modules.is_empty() {
            return Ok(Ok(()));
        }
        let result = self
            .conn
            .call_encoded("code", "atomic_load", payload, self.timeout)
            .await?;
        if term::is_atom(&result, "ok") {
            return Ok(Ok(()));
        }
        // {error, [{Module, What}]}
        let refusals = term::as_tuple_n::<2>(&result)
            .ok()
            .and_then(|[_, what]| term::as_list(what).ok())
            .map(|items| {
                items
                    .iter()
                    .map(|item| match term::as_tuple_n::<2>(item) {
                        Ok([m, why]) => Refusal {
                            module: term::as_atom(m)
                                .map(str::to_owned)
                                .unwrap_or_else(|_| term::show(m)),
                            reason: explain(why),
                        },
                        Err(_) => Refusal {
                            module: "?".into(),
                            reason: term::show(item),
                        },
                    })
                    .collect()
            })
            .unwrap_or_else(|| {
                vec![Refusal {
                    module: "?".into(),
                    reason: term::show(&result),
                }]
            });
        Ok(Err(refusals))
    }

    /// Loads one module with `code:load_binary/3` (for `-on_load` modules,
    /// which `atomic_load` refuses).
    pub async fn load_binary(&self, module: &Module) -> Result<Result<(), Refusal>, CallError> {
        let [name, file, bin] = load_parts(module);
        let result = self
            .conn
            .call("code", "load_binary", vec![name, file, bin], self.timeout)
            .await?;
        match term::as_tuple_n::<2>(&result) {
            Ok([tag, _]) if term::is_atom(tag, "module") => Ok(Ok(())),
            Ok([_, why]) => Ok(Err(Refusal {
                module: module.name.clone(),
                reason: explain(why),
            })),
            Err(_) => Ok(Err(Refusal {
                module: module.name.clone(),
                reason: term::show(&result),
            })),
        }
    }

    /// Removes modules entirely: old code purged (killing processes in it,
    /// this is a rollback), current code deleted and purged.
    pub async fn remove(&self, modules: &[&str]) -> Result<(), CallError> {
        self.purge(modules).await?;
        self.booleans("code", "delete", modules).await?;
        self.purge(modules).await?;
        Ok(())
    }

    /// The nodes this node is connected to (visible ones).
    pub async fn connected_nodes(&self) -> Result<Vec<String>, CallError> {
        let t = self
            .conn
            .call("erlang", "nodes", vec![], self.timeout)
            .await?;
        Ok(term::as_list(&t)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| term::as_atom(n).ok().map(str::to_owned))
            .collect())
    }

    /// The modules the node's application `app` declares, if it has it.
    pub async fn app_modules(&self, app: &str) -> Result<Option<Vec<String>>, CallError> {
        let t = self
            .conn
            .call(
                "application",
                "get_key",
                vec![atom_term(app), atom_term("modules")],
                self.timeout,
            )
            .await?;
        Ok(term::as_tuple_n::<2>(&t).ok().and_then(|[_, mods]| {
            term::as_list(mods).ok().map(|l| {
                l.iter()
                    .filter_map(|m| term::as_atom(m).ok().map(str::to_owned))
                    .collect()
            })
        }))
    }
}

fn load_parts(module: &Module) -> [Term; 3] {
    [
        atom_term(&module.name),
        charlist(&module.path.to_string_lossy()),
        binary(module.bytes.as_ref().clone()),
    ]
}

/// `[{Module, File, Binary}]` for `code:atomic_load/1`, written straight
/// from the files' bytes (no intermediate term holding a copy of them).
pub fn load_payload(modules: &[&Module]) -> Encoded {
    let size: usize = modules
        .iter()
        .map(|m| m.bytes.len() + m.name.len() + 64)
        .sum();
    let mut w = EtfWriter::with_capacity(size + 8);
    w.list_header(modules.len() as u32);
    for m in modules {
        w.tuple_header(3)
            .term(&atom_term(&m.name))
            .term(&charlist(&m.path.to_string_lossy()))
            .binary(&m.bytes);
    }
    w.nil();
    w.finish()
}

/// A node's reason for refusing a module, in words a user acts on.
fn explain(why: &Term) -> String {
    let raw = term::show(why);
    match term::as_atom(why) {
        Ok("sticky_directory") => {
            "it is sticky (part of kernel, stdlib or compiler) and the node refuses to replace it"
                .into()
        }
        Ok("not_purged") => "old code is still loaded".into(),
        Ok("on_load_not_allowed") => "it has an -on_load function".into(),
        Ok("badfile") => {
            "the node rejected the object code (compiled for another OTP release?)".into()
        }
        Ok("on_load_failure") => "its -on_load function failed".into(),
        _ => raw,
    }
}

/// A pid as the node's own shell prints it.
pub fn show_pid(pid: &Term) -> String {
    match pid {
        Term::Pid(p) => format!("<0.{}.{}>", p.id, p.serial),
        other => term::show(other),
    }
}
