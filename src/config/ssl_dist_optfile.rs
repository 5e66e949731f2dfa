//! The node's own `-ssl_dist_optfile` (an Erlang term file:
//! `[{server, Opts}, {client, Opts}].`), read for the files the tool needs:
//! one file for both sides. The client options come first (the tool is a
//! client), the server ones fill what they lack. Relative paths are taken
//! from the file's folder.
//!
//! Only the part of Erlang's term syntax such files use is read: lists,
//! tuples, atoms (plain and quoted), strings, binaries of one string,
//! integers and `%` comments.

use std::path::{Path, PathBuf};

/// What the tool takes from the file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DistOptions {
    pub cacertfile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    /// `{server_name_indication, disable}`: OTP then checks no host name.
    pub no_host_check: bool,
}

/// Reads `path`; an error is one line naming the file and what is wrong.
pub fn read(path: &Path) -> Result<DistOptions, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let folder = path.parent().unwrap_or(Path::new("."));
    parse(&text, folder).map_err(|e| format!("`{}`: {e}", path.display()))
}

fn parse(text: &str, folder: &Path) -> Result<DistOptions, String> {
    let mut reader = Reader {
        text: text.as_bytes(),
        at: 0,
    };
    let term = reader.term()?;
    reader.skip_blank();
    if reader.next() != Some(b'.') {
        return Err("the term does not end with `.`".into());
    }
    let OptTerm::List(sections) = term else {
        return Err("not a list of `{server, Options}` and `{client, Options}`".into());
    };
    let section = |name: &str| -> Vec<OptTerm> {
        sections
            .iter()
            .find_map(|s| match s {
                OptTerm::Tuple(pair) => match pair.as_slice() {
                    [OptTerm::Atom(key), OptTerm::List(opts)] if key == name => Some(opts.clone()),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or_default()
    };
    let (client, server) = (section("client"), section("server"));
    if client.is_empty() && server.is_empty() {
        return Err("neither a `client` nor a `server` section".into());
    }
    let file = |key: &str| -> Result<Option<PathBuf>, String> {
        let found = option(&client, key).or_else(|| option(&server, key));
        match found {
            None => Ok(None),
            Some(OptTerm::Str(s)) => Ok(Some(folder.join(s))),
            Some(_) => Err(format!("`{key}` is not a file name")),
        }
    };
    for inline in ["cacerts", "cert", "key", "certs_keys"] {
        if option(&client, inline).is_some() {
            return Err(format!(
                "`{inline}` (certificates inline) is not read; use `cacertfile`, `certfile` and `keyfile`"
            ));
        }
    }
    if matches!(option(&client, "verify"), Some(OptTerm::Atom(a)) if a == "verify_none") {
        return Err("the client side has `{verify, verify_none}`; this tool always verifies the node's certificate".into());
    }
    Ok(DistOptions {
        cacertfile: file("cacertfile")?,
        certfile: file("certfile")?,
        keyfile: file("keyfile")?,
        no_host_check: matches!(
            option(&client, "server_name_indication"),
            Some(OptTerm::Atom(a)) if a == "disable"
        ),
    })
}

fn option<'a>(options: &'a [OptTerm], key: &str) -> Option<&'a OptTerm> {
    options.iter().find_map(|o| match o {
        OptTerm::Tuple(pair) => match pair.as_slice() {
            [OptTerm::Atom(k), value] if k == key => Some(value),
            _ => None,
        },
        _ => None,
    })
}

#[derive(Debug, Clone)]
enum OptTerm {
    Atom(String),
    Str(String),
    Int,
    List(Vec<OptTerm>),
    Tuple(Vec<OptTerm>),
}

/// Terms nested deeper than this are refused (no stack overflow on a
/// hostile file).
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek();
        self.at += usize::from(byte.is_some());
        byte
    }

    fn skip_blank(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'%' => while !matches!(self.next(), Some(b'\n') | None) {},
                b if b.is_ascii_whitespace() => self.at += 1,
                _ => return,
            }
        }
    }

    fn term(&mut self) -> Result<OptTerm, String> {
        self.term_at(0)
    }

    fn term_at(&mut self, depth: usize) -> Result<OptTerm, String> {
        if depth > MAX_DEPTH {
            return Err("terms nested too deep".into());
        }
        self.skip_blank();
        match self.peek() {
            Some(b'[') => self.items(b']', depth).map(OptTerm::List),
            Some(b'{') => self.items(b'}', depth).map(OptTerm::Tuple),
            Some(b'"') => self.quoted(b'"').map(OptTerm::Str),
            Some(b'\'') => self.quoted(b'\'').map(OptTerm::Atom),
            Some(b'<') => self.binary(),
            Some(b) if b.is_ascii_lowercase() => Ok(OptTerm::Atom(self.word())),
            Some(b) if b.is_ascii_digit() || b == b'-' => {
                self.at += 1;
                self.word();
                Ok(OptTerm::Int)
            }
            Some(b) => Err(format!(
                "unexpected `{}` at byte {}",
                char::from(b),
                self.at
            )),
            None => Err("the file ends inside a term".into()),
        }
    }

    /// `[T, …]` or `{T, …}`, the opening bracket not yet read.
    fn items(&mut self, close: u8, depth: usize) -> Result<Vec<OptTerm>, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_blank();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(items);
        }
        loop {
            items.push(self.term_at(depth + 1)?);
            self.skip_blank();
            match self.next() {
                Some(b',') => continue,
                Some(b) if b == close => return Ok(items),
                _ => return Err(format!("expected `,` or `{}`", char::from(close))),
            }
        }
    }

    fn quoted(&mut self, quote: u8) -> Result<String, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err("a string or quoted atom does not end".into()),
                Some(b'\\') => match self.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b) => out.push(b),
                    None => return Err("a string ends in `\\`".into()),
                },
                Some(b) if b == quote => break,
                Some(b) => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| "a string is not UTF-8".to_owned())
    }

    /// `<<"text">>`: a file name may be given as a binary.
    fn binary(&mut self) -> Result<OptTerm, String> {
        if !self.text[self.at..].starts_with(b"<<") {
            return Err(format!("unexpected `<` at byte {}", self.at));
        }
        self.at += 2;
        self.skip_blank();
        let text = self.quoted(b'"')?;
        self.skip_blank();
        if !self.text[self.at..].starts_with(b">>") {
            return Err("a binary other than `<<\"text\">>`".into());
        }
        self.at += 2;
        Ok(OptTerm::Str(text))
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'@')
        {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_side_wins_and_the_server_side_fills_in() {
        let text = r#"
            %% the node's distribution over TLS
            [{server, [{certfile, "/etc/node/cert.pem"}, {keyfile, <<"/etc/node/key.pem">>},
                       {cacertfile, "ca.pem"}, {verify, verify_peer},
                       {fail_if_no_peer_cert, true}, {depth, 2}]},
             {client, [{cacertfile, "/etc/node/ca.pem"}, {verify, verify_peer},
                       {server_name_indication, disable}, {versions, ['tlsv1.3']}]}].
        "#;
        let got = parse(text, Path::new("/etc/node")).expect("parsed");
        assert_eq!(got.cacertfile, Some(PathBuf::from("/etc/node/ca.pem")));
        assert_eq!(got.certfile, Some(PathBuf::from("/etc/node/cert.pem")));
        assert_eq!(got.keyfile, Some(PathBuf::from("/etc/node/key.pem")));
        assert!(got.no_host_check);

        let got = parse(
            "[{server, [{cacertfile, \"pki/ca.pem\"}]}].",
            Path::new("/srv"),
        )
        .expect("parsed");
        assert_eq!(got.cacertfile, Some(PathBuf::from("/srv/pki/ca.pem")));
        assert!(!got.no_host_check);
    }

    #[test]
    fn what_cannot_be_used_is_said() {
        for (text, words) in [
            ("[{client, [{verify, verify_none}]}].", "verify_none"),
            ("[{client, [{cacerts, [<<\"x\">>]}]}].", "inline"),
            ("[{client, [{certfile, 42}]}].", "not a file name"),
            ("[{client, []}]", "does not end with `.`"),
            ("{client, []}.", "not a list"),
            ("[{other, [{a, b}]}].", "neither"),
            ("[{client, [{certfile, \"x}]}].", "does not end"),
            ("[{client, [{certfile \"x\"}]}].", "expected"),
            ("", "ends inside a term"),
        ] {
            let err = parse(text, Path::new("/")).expect_err(text);
            assert!(err.contains(words), "{text}: {err}");
        }
        let deep = format!("{}{}.", "[".repeat(1000), "]".repeat(1000));
        assert!(parse(&deep, Path::new("/"))
            .expect_err("deep")
            .contains("too deep"));
    }
}
