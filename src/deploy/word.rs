//! The tool's word to a step that waits for it before changing anything
//! (a flight, or an apply step sent before its snapshot was on disk): go,
//! or abort. It goes to the node's lock holder, keyed by run and step
//! (`node/inspect.erl`'s `hold`, `node/apply.erl`'s `await_go`). A flight
//! registers its holder itself, so the word may come before the holder is
//! there, or while a previous run's still is (which does not acknowledge
//! it). The word is therefore this expression, evaluated on the node:
//!
//! ```erlang
//! (fun Say(N, _) when N =< 0 -> lost;
//!      Say(N, D) ->
//!          Ref = make_ref(),
//!          catch hotswap_deploy_lock ! {say, Key, Word, self(), Ref},
//!          receive
//!              {Ref, taken} -> taken;
//!              {Ref, {not_mine, H}} ->
//!                  M = monitor(process, H),
//!                  receive {'DOWN', M, _, _, _} -> Say(N div 2, 1)
//!                  after N -> lost end
//!          after D -> Say(N - D, min(2 * D, 32)) end
//!  end)(Tries, 1)
//! ```
//!
//! Another run's holder answers `not_mine`: the word then waits for that
//! holder to go, one message to it, not one a millisecond (its run may
//! hold the lock for the whole of its lease). While no holder is there,
//! the word tries after 1 ms, then ever less often, up to every 32 ms.
//!
//! sent as abstract syntax to `erl_eval:exprs/2`: without the evaluator's
//! bootstrap and a packed script, it is half the bytes, and a device behind
//! a slow link pays for every byte of every deploy.
//!
//! A step that has told the tool it prepared (a flight to several nodes)
//! has its run's holder there already: its word is the message alone,
//! sent straight to the holder ([`message`]).

use crate::dist::eval::ast::*;
use crate::dist::term::{self, atom_term, list, tuple, Term};

/// The arguments of `erl_eval:exprs/2` that give `word` for `key` (the
/// run's lock token and step), trying for about `tries` milliseconds.
pub fn say_args(key: Term, word: &str, tries: u64) -> Vec<Term> {
    let bindings = list(vec![
        tuple(vec![atom_term("Key"), key]),
        tuple(vec![atom_term("Tries"), term::int(tries as i64)]),
        tuple(vec![atom_term("Word"), atom_term(word)]),
    ]);
    vec![list(vec![say()]), bindings]
}

/// `{say, Key, Word, Pid, Ref}`: `word` for `key`, acknowledged to
/// `reply_to` (`{Pid, Ref}`); `None` if `reply_to` is not such a pair.
pub fn message(key: Term, word: &str, reply_to: &Term) -> Option<Term> {
    let [pid, reference] = term::as_tuple_n::<2>(reply_to).ok()?;
    Some(tuple(vec![
        atom_term("say"),
        key,
        atom_term(word),
        pid.clone(),
        reference.clone(),
    ]))
}

fn say() -> Term {
    let message = tuple_of(vec![
        atom("say"),
        var("Key"),
        var("Word"),
        local("self", vec![]),
        var("Ref"),
    ]);
    let taken = clause(
        vec![tuple_of(vec![var("Ref"), atom("taken")])],
        vec![atom("taken")],
    );
    let not_mine = clause(
        vec![tuple_of(vec![
            var("Ref"),
            tuple_of(vec![atom("not_mine"), var("H")]),
        ])],
        vec![
            matching(var("M"), local("monitor", vec![atom("process"), var("H")])),
            receive_after(
                vec![clause(
                    vec![tuple_of(vec![
                        atom("DOWN"),
                        var("M"),
                        var("_"),
                        var("_"),
                        var("_"),
                    ])],
                    vec![apply(
                        var("Say"),
                        vec![op("div", var("N"), integer(2)), integer(1)],
                    )],
                )],
                var("N"),
                vec![atom("lost")],
            ),
        ],
    );
    let again = apply(
        var("Say"),
        vec![
            op("-", var("N"), var("D")),
            local(
                "min",
                vec![op("*", integer(2), var("D")), integer(MAX_PAUSE_MS)],
            ),
        ],
    );
    let attempt = clause(
        vec![var("N"), var("D")],
        vec![
            matching(var("Ref"), local("make_ref", vec![])),
            catching(op("!", atom("hotswap_deploy_lock"), message)),
            receive_after(vec![taken, not_mine], var("D"), vec![again]),
        ],
    );
    let done = guarded(
        vec![var("N"), var("_")],
        op("=<", var("N"), integer(0)),
        vec![atom("lost")],
    );
    apply(
        named_fun("Say", vec![done, attempt]),
        vec![var("Tries"), integer(1)],
    )
}

/// The longest pause between two tries of the word while no holder is
/// there.
const MAX_PAUSE_MS: i64 = 32;
