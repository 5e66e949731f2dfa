//! The after-deploy hook: a function called on each node once its change
//! runs, with the modules changed there, for what live-reload users ask of
//! a new version (redraw a scene, read a configuration again). Its failure
//! is reported and named, and changes nothing back: the new code runs.

use crate::deploy::remote::Remote;
use crate::deploy::report::NodeReport;
use crate::peer::term::{self, atom_term, list};
use crate::peer::Call;
use futures::future::join_all;

pub use crate::deploy::options::Hook;

/// Calls `hook` on every node of `reports` that loaded something (each
/// report's `loaded`), all at once; a call that raises or returns
/// `{error, Reason}` is written to that node's report. Whether every call
/// succeeded.
pub async fn call(hook: &Hook, remotes: &[Remote], reports: &mut [NodeReport]) -> bool {
    let calls = remotes.iter().zip(reports.iter()).map(|(r, report)| {
        let changed = list(report.loaded.iter().map(|m| atom_term(m)).collect());
        async move {
            if report.loaded.is_empty() {
                return Ok(());
            }
            let value = r
                .link
                .call(
                    Call::new(&hook.module, &hook.function, vec![changed]),
                    r.timeout,
                )
                .await
                .map_err(|e| e.to_string())?;
            match term::as_tuple_n::<2>(&value) {
                Ok([tag, why]) if term::is_atom(tag, "error") => {
                    Err(format!("it returned {{error, {}}}", term::show(why)))
                }
                _ => Ok(()),
            }
        }
    });
    let results = join_all(calls).await;
    let mut all = true;
    for (report, result) in reports.iter_mut().zip(results) {
        if let Err(e) = result {
            all = false;
            report.fail(
                None,
                format!("the after-deploy call {hook} failed (the new code stays): {e}"),
            );
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(module: &str, function: &str) -> Hook {
        Hook {
            module: module.into(),
            function: function.into(),
        }
    }

    #[test]
    fn elixir_and_erlang_names_are_read_and_anything_else_is_refused() {
        assert_eq!(
            "MyApp.Scene.redraw".parse(),
            Ok(hook("Elixir.MyApp.Scene", "redraw"))
        );
        assert_eq!("my_app:reload".parse(), Ok(hook("my_app", "reload")));
        assert_eq!("my_app.reload".parse(), Ok(hook("my_app", "reload")));
        for bad in ["redraw", "Scene.", ":f", "m:", "a b:c", "m:f.g"] {
            let err = bad.parse::<Hook>().expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }
}
