//! A script as it travels: Erlang source (the node scripts this crate
//! ships, commented for their readers) packed once per process for the
//! wire. Comments and indentation go, line breaks stay (an error's line
//! number still counts the lines of its part), and the rest is
//! zlib-compressed: a sixth of the bytes, which is what a device behind a
//! slow link pays for every deploy. The node inflates it with `zlib`, a
//! module every runtime preloads.

use std::io::Write;
use std::sync::OnceLock;

/// What [`crate::dist::Connection::eval`] runs on a node: Erlang
/// expressions separated by commas, in two parts. The funs part binds the
/// script's funs and sees none of the call's bindings; the main part, ending
/// in a full stop, sees both. erl_eval checks each fun it creates against
/// every variable in scope (a lint of the fun, growing with both), so funs
/// bound before the call's bindings, biggest first, cost about 40% less to
/// make: 0.4 ms of a one-node deploy's script on this project's bench
/// machine, ten times that on a device's CPU.
#[derive(Debug)]
pub struct Script {
    funs: &'static str,
    main: &'static str,
    packed: OnceLock<Vec<u8>>,
}

impl Script {
    /// A script of one part.
    pub const fn new(main: &'static str) -> Script {
        Script::with_funs("", main)
    }

    /// `funs` (each ending in a comma), then `main`.
    pub const fn with_funs(funs: &'static str, main: &'static str) -> Script {
        Script {
            funs,
            main,
            packed: OnceLock::new(),
        }
    }

    /// Both parts without comments or indentation, the funs ended with
    /// `ok.` and the parts parted by a form feed, compressed.
    pub fn packed(&self) -> &[u8] {
        self.packed.get_or_init(|| {
            let text = format!("{}ok.\n\x0c{}", strip(self.funs), strip(self.main));
            compress(&text)
        })
    }
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
    fn packing_inflates_back_to_both_parts_stripped() {
        let script = Script::with_funs("%% doc\nF = fun() -> 1 end,\n", "X = F(), % one\nX.\n");
        let mut text = String::new();
        use std::io::Read;
        flate2::read::ZlibDecoder::new(script.packed())
            .read_to_string(&mut text)
            .expect("inflates");
        assert_eq!(text, "\nF = fun() -> 1 end,\nok.\n\x0cX = F(),\nX.\n");
    }
}
