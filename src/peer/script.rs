//! A script as it travels: Erlang source (the node scripts this crate
//! ships, commented for their readers) packed once per process for the
//! wire. Comments and indentation go, line breaks stay (in an error, a
//! line number of the main part counts its source lines; of a function,
//! the lines from its head), and the rest is
//! zlib-compressed: a sixth of the bytes, which is what a device behind a
//! slow link pays for every deploy. The node inflates it with `zlib`, a
//! module every runtime preloads.

use std::io::Write;
use std::sync::OnceLock;

/// What [`crate::peer::Connection::eval`] runs on a node: its functions,
/// written as a module's are (`name(Args) -> Body.`), and its main part,
/// Erlang expressions separated by commas and ending in a full stop,
/// which sees the call's bindings and calls the functions as local
/// functions. Functions see only their arguments, and have names of their
/// own (one arity each).
///
/// Functions, not funs bound to variables: `erl_eval` lints every fun it
/// creates, against every variable in scope, at a cost that grows faster
/// than the fun's size. The deploy scripts' twenty funs cost 1.0 ms to
/// make on this project's bench machine (2 ms in a fresh process, more on
/// OTP 27 and 29, ten times that on a device's CPU), every call. A local
/// function is only parsed, the first time a process calls it (the node's
/// parse of the deploy scripts' functions took 1.9 ms, of which a third is
/// of those that run in the lock's holder or seldom run at all); calling
/// one costs some 10 us more than calling a fun. A fun written inside a
/// function is linted each time it is made, so the functions make few,
/// small ones, and none per module.
#[derive(Debug)]
pub struct Script {
    functions: &'static str,
    main: &'static str,
    packed: OnceLock<Vec<u8>>,
}

impl Script {
    /// A script of a main part only.
    pub const fn new(main: &'static str) -> Script {
        Script::with_functions("", main)
    }

    /// `functions`, each ending on a line that ends in a full stop (and
    /// no other line does), for `main` to call.
    pub const fn with_functions(functions: &'static str, main: &'static str) -> Script {
        Script {
            functions,
            main,
            packed: OnceLock::new(),
        }
    }

    /// The loader (`loader.erl`), the functions' names, the main part,
    /// then each function, parted by form feeds, without comments or
    /// indentation, compressed. (The node parses each part on its own: a
    /// form feed is never in this crate's Erlang.)
    pub fn packed(&self) -> &[u8] {
        self.packed.get_or_init(|| {
            let functions = functions_of(&strip(self.functions));
            let names: Vec<&str> = functions.iter().map(|f| name_of(f)).collect();
            debug_assert!(
                names
                    .iter()
                    .all(|n| names.iter().filter(|m| *m == n).count() == 1),
                "two functions of one name in {names:?}"
            );
            let mut text = strip(include_str!("loader.erl"));
            text.push('\x0c');
            text.push_str(&names.join(" "));
            text.push('\x0c');
            text.push_str(&strip(self.main));
            for function in &functions {
                text.push('\x0c');
                text.push_str(function);
            }
            compress(&text)
        })
    }
}

/// Stripped source cut into its functions: a function ends on a line that
/// ends in a full stop. Blank lines between them go; those in one stay.
fn functions_of(stripped: &str) -> Vec<String> {
    let mut functions = Vec::new();
    let mut current = String::new();
    for line in stripped.lines() {
        if line.is_empty() && current.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.ends_with('.') {
            functions.push(std::mem::take(&mut current));
        }
    }
    debug_assert!(
        current.is_empty(),
        "a function without a full stop: {current}"
    );
    functions
}

/// Packs `scripts` on a thread of their own, in order, so that a call
/// that sends one (most often once connections are open) finds it packed,
/// or waits for that one only. Packing one takes some 0.6 ms, otherwise
/// paid by the first call that sends it, on the way to the node.
pub fn pack_ahead(scripts: &[&'static Script]) {
    let scripts = scripts.to_vec();
    std::thread::spawn(move || {
        for script in scripts {
            script.packed();
        }
    });
}

/// Every line without its comment and surrounding blanks. A `%` starts a
/// comment unless it is in a string, a quoted atom or a character literal.
fn strip(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        out.push_str(code_of(line).trim());
        out.push('\n');
    }
    out
}

fn code_of(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '$') => {
                // A character literal: `$%`, `$"`, `$\n`.
                if let Some((_, '\\')) = chars.next() {
                    chars.next();
                }
            }
            (None, '%') => return &line[..i],
            (None, _) => {}
        }
    }
    line
}

/// The name a function's head starts with.
fn name_of(function: &str) -> &str {
    function.split('(').next().unwrap_or_default().trim()
}

fn compress(text: &str) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(text.as_bytes());
    z.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_and_what_looks_like_one_in_code_stays() {
        let source = "%% a header\n  X = \"50% off\", % why\n  Y = '%', Z = $%, W = $\\%,\n  V = \"a\\\"%\". %% end\n";
        assert_eq!(
            strip(source),
            "\nX = \"50% off\",\nY = '%', Z = $%, W = $\\%,\nV = \"a\\\"%\".\n"
        );
    }

    #[test]
    fn lines_are_kept_so_errors_point_into_the_source() {
        let source = "A = 1,\n%% only a comment\n\n    B = A.\n";
        assert_eq!(strip(source).lines().count(), source.lines().count());
    }

    #[test]
    fn packing_inflates_to_the_main_part_then_each_function() {
        let functions = "%% doc\nf() ->\n    1.\n\n%% g(X): X.\ng(X) -> X.\n";
        let script = Script::with_functions(functions, "X = f(), % one\ng(X).\n");
        let mut text = String::new();
        use std::io::Read;
        flate2::read::ZlibDecoder::new(script.packed())
            .read_to_string(&mut text)
            .expect("inflates");
        let loader = strip(include_str!("loader.erl"));
        assert_eq!(
            text,
            format!("{loader}\x0cf g\x0cX = f(),\ng(X).\n\x0cf() ->\n1.\n\x0cg(X) -> X.\n")
        );
    }
}
