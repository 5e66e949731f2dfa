//! Evaluating a short Erlang expression sequence on a node through `rex`
//! and `erl_eval`, so one phase of work costs one round trip whatever it
//! does there, and nothing is installed on the node.
//!
//! The node receives the source text and a set of bindings. A fixed
//! bootstrap (built here as abstract syntax, the only form `erl_eval`
//! takes) scans and parses the source on the node and evaluates it with
//! those bindings; only the final value comes back. `erl_scan`,
//! `erl_parse` and `erl_eval` are in `stdlib`, on every node.

use super::connection::Connection;
use super::error::CallError;
use super::rpc::outcome;
use super::script::Script;
use super::term::{atom_term, binary, encode_bare, Encoded, EtfWriter, Term};
use std::collections::BTreeMap;
use std::time::Duration;

/// The named values a script sees as its variables. Each value is encoded
/// as it is added; big ones (module binaries) are written straight into
/// the buffer.
#[derive(Debug, Default)]
pub struct Bindings {
    values: BTreeMap<String, Vec<u8>>,
}

impl Bindings {
    pub fn new() -> Self {
        Bindings::default()
    }

    /// Binds `name` (an Erlang variable name, capitalised) to `value`.
    pub fn set(mut self, name: &str, value: &Term) -> Self {
        self.values.insert(name.to_owned(), encode_bare(value));
        self
    }

    /// The bindings as `erl_eval` takes them: a map, not an orddict.
    /// erl_eval merges the bindings in scope at every operator and match;
    /// with a map that is one `maps:merge_with/3`, with an orddict a fold
    /// over every binding that looks each up in the other (quadratic: on
    /// the node scripts' thirty-odd variables, five times the time).
    pub fn encode(self) -> EvalArgs {
        EvalArgs {
            values: self.values,
            shared: None,
        }
    }

    /// These bindings plus `name` bound to `shared`, a value encoded once
    /// and sent to several nodes (module binaries) without being copied
    /// into each one's bindings.
    pub fn with_shared(self, name: &str, shared: &Encoded) -> EvalArgs {
        debug_assert!(!self.values.contains_key(name), "{name} bound twice");
        EvalArgs {
            values: self.values,
            shared: Some((name.to_owned(), shared.clone())),
        }
    }
}

/// Bindings ready to send ([`Connection::eval`]): each value encoded, and
/// the shared one (if any) kept apart, to be sent as it is.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub(crate) values: BTreeMap<String, Vec<u8>>,
    pub(crate) shared: Option<(String, Encoded)>,
}

impl EvalArgs {
    /// The map's header and every binding but the shared one's value:
    /// `front`, then the shared value, completes the map.
    pub(super) fn front(&self) -> Vec<u8> {
        let size = self.values.values().map(|v| v.len() + 32).sum::<usize>() + 40;
        let mut w = EtfWriter::with_capacity(size);
        let count = self.values.len() + usize::from(self.shared.is_some());
        w.map_header(count as u32);
        for (name, value) in &self.values {
            w.term(&atom_term(name)).raw(value);
        }
        if let Some((name, _)) = &self.shared {
            w.term(&atom_term(name));
        }
        w.into_bytes()
    }

    /// The shared value, or nothing.
    pub(super) fn shared(&self) -> Encoded {
        self.shared
            .as_ref()
            .map_or_else(Encoded::default, |(_, v)| v.clone())
    }
}

impl Connection {
    /// Sends `script` to be evaluated on the node with `bindings`; the request
    /// leaves now, and the future returned waits for its value. An
    /// exception on the node comes back as [`CallError::BadRpc`].
    pub fn eval(
        &self,
        script: &Script,
        bindings: &EvalArgs,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Term, CallError>> + Send + 'static {
        let node = self.node().to_string();
        // {call, erl_eval, expr, [Boot, [{'B', Bindings}, {'S', Source}], none, none, value], user}
        let mut head = vec![104, 5];
        for a in ["call", "erl_eval", "expr"] {
            head.extend(encode_bare(&atom_term(a)));
        }
        head.extend_from_slice(&[108, 0, 0, 0, 5]);
        head.extend_from_slice(encoded_bootstrap());
        head.extend_from_slice(&[108, 0, 0, 0, 2, 104, 2]);
        head.extend(encode_bare(&atom_term("B")));
        head.extend(bindings.front());
        let mut tail = vec![104, 2];
        tail.extend(encode_bare(&atom_term("S")));
        // A binary, not a charlist: a list of that many integers would be
        // copied into rex and again into its worker.
        tail.extend(encode_bare(&binary(script.packed().to_vec())));
        tail.push(106);
        for a in ["none", "none", "value"] {
            tail.extend(encode_bare(&atom_term(a)));
        }
        tail.push(106);
        tail.extend(encode_bare(&atom_term("user")));
        let reply = self.gen_call_shared("rex", &head, &bindings.shared(), &tail);
        async move { outcome(reply, timeout, &node, "erl_eval:expr/5", timeout).await }
    }
}

/// [`bootstrap`], encoded once per process.
pub(crate) fn encoded_bootstrap() -> &'static [u8] {
    static ENCODED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ENCODED.get_or_init(|| encode_bare(&bootstrap()))
}

/// What every script's call evaluates, as abstract syntax (the only form
/// `erl_eval` takes; it goes with every call, so it is kept short):
///
/// ```erlang
/// begin
///     [Loader | P] = binary:split(zlib:uncompress(S), list_to_binary([12]), [global]),
///     element(2, erl_eval:exprs(element(2, erl_parse:parse_exprs(element(2,
///         erl_scan:string(unicode:characters_to_list(Loader))))),
///         maps:from_list([{'P', P}, {'B', B}]), none, none))
/// end
/// ```
///
/// The script's loader (`loader.erl`, see [`Script`]) does the rest, with
/// the other parts (P) and the call's bindings (B). (`exprs/4`, unlike
/// `exprs/2`, does not lint the whole script first. And
/// `list_to_binary([12])`, not `<<12>>`: erl_eval evaluates binary syntax
/// with modules a node loads from disk at its first use, 2 ms of a fresh
/// node's first call.)
fn bootstrap() -> Term {
    use ast::*;
    let chars = remote("unicode", "characters_to_list", vec![var("Loader")]);
    let tokens = local(
        "element",
        vec![integer(2), remote("erl_scan", "string", vec![chars])],
    );
    let loader = local(
        "element",
        vec![integer(2), remote("erl_parse", "parse_exprs", vec![tokens])],
    );
    let parts = matching(
        cons_tail(vec![var("Loader")], var("P")),
        remote(
            "binary",
            "split",
            vec![
                remote("zlib", "uncompress", vec![var("S")]),
                local("list_to_binary", vec![cons(vec![integer(12)])]),
                cons(vec![atom("global")]),
            ],
        ),
    );
    let bound = |name: &str| tuple_of(vec![atom(name), var(name)]);
    let bindings = remote(
        "maps",
        "from_list",
        vec![cons(vec![bound("P"), bound("B")])],
    );
    let value = remote(
        "erl_eval",
        "exprs",
        vec![loader, bindings, atom("none"), atom("none")],
    );
    block(vec![parts, local("element", vec![integer(2), value])])
}

/// Builders of Erlang abstract syntax, for [`bootstrap`] and other
/// expressions sent as such (`erl_eval:exprs/2` takes nothing else).
pub mod ast {
    use crate::peer::term::{self, atom_term, list, tuple, Term};

    fn line() -> Term {
        term::int(1)
    }

    fn node(tag: &str, rest: Vec<Term>) -> Term {
        let mut items = vec![atom_term(tag), line()];
        items.extend(rest);
        tuple(items)
    }

    pub fn atom(name: &str) -> Term {
        node("atom", vec![atom_term(name)])
    }

    pub fn var(name: &str) -> Term {
        node("var", vec![atom_term(name)])
    }

    pub fn integer(i: i64) -> Term {
        node("integer", vec![term::int(i)])
    }

    pub fn empty_map() -> Term {
        node("map", vec![list(vec![])])
    }

    /// `[A, B, ...]`.
    pub fn cons(items: Vec<Term>) -> Term {
        cons_tail(items, node("nil", vec![]))
    }

    /// `[A, B, ... | Tail]`.
    pub fn cons_tail(items: Vec<Term>, tail: Term) -> Term {
        items
            .into_iter()
            .rev()
            .fold(tail, |tail, head| node("cons", vec![head, tail]))
    }

    pub fn remote(module: &str, function: &str, args: Vec<Term>) -> Term {
        let callee = node("remote", vec![atom(module), atom(function)]);
        node("call", vec![callee, list(args)])
    }

    pub fn local(function: &str, args: Vec<Term>) -> Term {
        node("call", vec![atom(function), list(args)])
    }

    pub fn matching(pattern: Term, expr: Term) -> Term {
        node("match", vec![pattern, expr])
    }

    pub fn block(exprs: Vec<Term>) -> Term {
        node("block", vec![list(exprs)])
    }

    pub fn tuple_of(items: Vec<Term>) -> Term {
        node("tuple", vec![list(items)])
    }

    /// `A Op B`, as `'!'` or `'-'`.
    pub fn op(operator: &str, a: Term, b: Term) -> Term {
        node("op", vec![atom_term(operator), a, b])
    }

    /// `catch Expr`.
    pub fn catching(expr: Term) -> Term {
        node("catch", vec![expr])
    }

    /// `Callee(Args)`, the callee an expression (a fun).
    pub fn apply(callee: Term, args: Vec<Term>) -> Term {
        node("call", vec![callee, list(args)])
    }

    /// A clause without guards: `(Patterns) -> Body`.
    pub fn clause(patterns: Vec<Term>, body: Vec<Term>) -> Term {
        node("clause", vec![list(patterns), list(vec![]), list(body)])
    }

    /// A clause with one guard: `(Patterns) when Guard -> Body`.
    pub fn guarded(patterns: Vec<Term>, guard: Term, body: Vec<Term>) -> Term {
        node(
            "clause",
            vec![list(patterns), list(vec![list(vec![guard])]), list(body)],
        )
    }

    /// `fun Name(...) -> ...; ... end`.
    pub fn named_fun(name: &str, clauses: Vec<Term>) -> Term {
        node("named_fun", vec![atom_term(name), list(clauses)])
    }

    /// `receive Clauses after Ms -> After end`.
    pub fn receive_after(clauses: Vec<Term>, ms: Term, after: Vec<Term>) -> Term {
        node("receive", vec![list(clauses), ms, list(after)])
    }

    /// `[Expr || Pattern <- List]`.
    pub fn comprehension(expr: Term, pattern: Term, from: Term) -> Term {
        let generate = node("generate", vec![pattern, from]);
        node("lc", vec![expr, list(vec![generate])])
    }
}
