//! Reads the `config :mix_tasks_upload_hotswap, …` block that users of
//! `mix upload.hotswap` already have in `config/config.exs`, without
//! starting a BEAM. Only literal data is understood — atoms (`:foo`,
//! `:"quoted"`), strings, numbers, lists and keyword lists, spread over
//! lines with comments — which is what such blocks hold. Anything else in
//! that block is an error naming file and line. Other `config` calls are
//! skipped unread. `import_config` is followed for literal paths and for
//! `"#{config_env()}.exs"`-style ones; `target.exs` only when `MIX_TARGET`
//! names a target.

use super::error::ConfigError;
use super::keys::FileConfig;
use std::path::{Path, PathBuf};

const APP: &str = "mix_tasks_upload_hotswap";

/// The build a config is read for: `MIX_ENV`, and `MIX_TARGET` when it
/// names a target (not `host`).
#[derive(Debug, Clone, Copy)]
pub struct MixBuild<'a> {
    pub env: &'a str,
    pub target: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Atom(String),
    /// `key:` in a keyword list.
    Key(String),
    Str(String),
    Num(String),
    Punct(char),
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Atom(String),
    Str(String),
    Num(String),
    List(Vec<Value>),
    Keyword(Vec<(String, Value)>),
}

/// The block's settings, from `path` and the files it imports; `None` when
/// no such block exists.
pub fn read_upload_hotswap(
    path: &Path,
    build: MixBuild<'_>,
) -> Result<Option<FileConfig>, ConfigError> {
    let mut found = None;
    read_file(path, build, &mut found, 0)?;
    Ok(found)
}

fn read_file(
    path: &Path,
    build: MixBuild<'_>,
    found: &mut Option<FileConfig>,
    depth: usize,
) -> Result<(), ConfigError> {
    if depth > 8 {
        return Err(exs_error(path, 1, "`import_config` nests too deep".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_text(&text, path, build, found, depth)
}

/// The block's settings in `text`, a config file's (`None` when it has
/// none), without following its `import_config`s: for checking the reader
/// on any input.
pub fn parse_text(text: &str, build: MixBuild<'_>) -> Result<Option<FileConfig>, ConfigError> {
    let mut found = None;
    let nowhere = Path::new("/nonexistent/config/config.exs");
    read_text(text, nowhere, build, &mut found, 9)?;
    Ok(found)
}

/// [`read_file`] on `text`, read from `path`; imports (at `depth` 9, none)
/// are followed from `path`'s folder.
fn read_text(
    text: &str,
    path: &Path,
    build: MixBuild<'_>,
    found: &mut Option<FileConfig>,
    depth: usize,
) -> Result<(), ConfigError> {
    let toks = tokenize(text, build).map_err(|(line, d)| exs_error(path, line, d))?;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].1 {
            Tok::Ident(word) if word == "import_config" => {
                let arg = toks.get(i + 1).or_else(|| toks.get(i + 2));
                let arg = match (toks.get(i + 1), toks.get(i + 2)) {
                    (Some((_, Tok::Punct('('))), Some(t)) => Some(t),
                    _ => arg,
                };
                if let Some((_, Tok::Str(rel))) = arg {
                    let wanted = !(rel == "target.exs" && build.target.is_none());
                    let file = path.parent().unwrap_or(Path::new(".")).join(rel);
                    if wanted && depth < 9 && file.is_file() {
                        read_file(&file, build, found, depth + 1)?;
                    }
                }
                i += 1;
            }
            Tok::Ident(word) if word == "config" && is_our_block(&toks, i + 1) => {
                let line = toks[i].0;
                let (pairs, next) =
                    parse_block(&toks, i + 1).map_err(|(l, d)| exs_error(path, l, d))?;
                let cfg = found.get_or_insert_with(FileConfig::default);
                apply(cfg, pairs).map_err(|d| exs_error(path, line, d))?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn exs_error(path: &Path, line: usize, detail: String) -> ConfigError {
    ConfigError::Exs {
        path: PathBuf::from(path),
        line,
        detail,
    }
}

fn is_our_block(toks: &[(usize, Tok)], mut i: usize) -> bool {
    if matches!(toks.get(i), Some((_, Tok::Punct('(')))) {
        i += 1;
    }
    matches!(toks.get(i), Some((_, Tok::Atom(a))) if a == APP)
}

type ExsResult<T> = Result<T, (usize, String)>;

/// Parses `[(]:app, key: value, … [)]` from `i`; returns the pairs and the
/// index after the statement.
fn parse_block(toks: &[(usize, Tok)], mut i: usize) -> ExsResult<(Vec<(String, Value)>, usize)> {
    let paren = matches!(toks.get(i), Some((_, Tok::Punct('('))));
    if paren {
        i += 1;
    }
    i += 1; // the app atom
    let line = toks.get(i).map(|t| t.0).unwrap_or(0);
    if !matches!(toks.get(i), Some((_, Tok::Punct(',')))) {
        return Err((line, format!("expected `,` after `:{APP}`")));
    }
    i += 1;
    let (value, mut i) = if matches!(toks.get(i), Some((_, Tok::Punct('[')))) {
        parse_value(toks, i)?
    } else {
        let (pairs, next) = parse_pairs(toks, i, None)?;
        (Value::Keyword(pairs), next)
    };
    if paren {
        match toks.get(i) {
            Some((_, Tok::Punct(')'))) => i += 1,
            other => return Err((other.map(|t| t.0).unwrap_or(line), "expected `)`".into())),
        }
    }
    match value {
        Value::Keyword(pairs) => Ok((pairs, i)),
        Value::List(l) if l.is_empty() => Ok((Vec::new(), i)),
        _ => Err((line, "expected a keyword list of settings".into())),
    }
}

/// `key: value` pairs separated by commas, until `close` (or the end of the statement).
fn parse_pairs(
    toks: &[(usize, Tok)],
    mut i: usize,
    close: Option<char>,
) -> ExsResult<(Vec<(String, Value)>, usize)> {
    let mut pairs = Vec::new();
    loop {
        match toks.get(i) {
            Some((_, Tok::Key(k))) => {
                let (v, next) = parse_value(toks, i + 1)?;
                pairs.push((k.clone(), v));
                i = next;
            }
            Some((_, Tok::Punct(c))) if Some(*c) == close => return Ok((pairs, i)),
            Some((line, t)) => {
                return Err((
                    *line,
                    format!("expected `key: value`, found {}", describe(t)),
                ))
            }
            None => {
                return Err((
                    toks.last().map(|t| t.0).unwrap_or(1),
                    "the settings end early".into(),
                ))
            }
        }
        match toks.get(i) {
            Some((_, Tok::Punct(','))) => i += 1,
            _ => return Ok((pairs, i)),
        }
    }
}

fn parse_value(toks: &[(usize, Tok)], i: usize) -> ExsResult<(Value, usize)> {
    let Some((line, tok)) = toks.get(i) else {
        return Err((
            toks.last().map(|t| t.0).unwrap_or(1),
            "a value is missing".into(),
        ));
    };
    match tok {
        Tok::Atom(a) => Ok((Value::Atom(a.clone()), i + 1)),
        Tok::Str(s) => Ok((Value::Str(s.clone()), i + 1)),
        Tok::Num(n) => Ok((Value::Num(n.clone()), i + 1)),
        Tok::Ident(w) if w == "true" || w == "false" || w == "nil" => {
            Ok((Value::Atom(w.clone()), i + 1))
        }
        Tok::Punct('[') => {
            if let Some((_, Tok::Key(_))) = toks.get(i + 1) {
                let (pairs, next) = parse_pairs(toks, i + 1, Some(']'))?;
                return close(toks, next, ']').map(|n| (Value::Keyword(pairs), n));
            }
            let mut items = Vec::new();
            let mut j = i + 1;
            loop {
                if let Some((_, Tok::Punct(']'))) = toks.get(j) {
                    return Ok((Value::List(items), j + 1));
                }
                let (v, next) = parse_value(toks, j)?;
                items.push(v);
                match toks.get(next) {
                    Some((_, Tok::Punct(','))) => j = next + 1,
                    _ => return close(toks, next, ']').map(|n| (Value::List(items), n)),
                }
            }
        }
        other => Err((*line, format!("{} is not a literal value", describe(other)))),
    }
}

fn close(toks: &[(usize, Tok)], i: usize, c: char) -> ExsResult<usize> {
    match toks.get(i) {
        Some((_, Tok::Punct(p))) if *p == c => Ok(i + 1),
        Some((line, t)) => Err((*line, format!("expected `{c}`, found {}", describe(t)))),
        None => Err((
            toks.last().map(|t| t.0).unwrap_or(1),
            format!("missing `{c}`"),
        )),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(w) => format!("`{w}` (a variable or function call)"),
        Tok::Atom(a) => format!("`:{a}`"),
        Tok::Key(k) => format!("`{k}:`"),
        Tok::Str(_) => "a string".into(),
        Tok::Num(n) => format!("`{n}`"),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Other(o) => format!("`{o}`"),
    }
}

fn apply(cfg: &mut FileConfig, pairs: Vec<(String, Value)>) -> Result<(), String> {
    for (key, value) in pairs {
        match key.as_str() {
            "app_name" => cfg.app_name = Some(text(&key, value)?),
            "cookie" => cfg.cookie = Some(text(&key, value)?),
            "nodes" => match value {
                Value::List(items) => {
                    cfg.nodes = Some(
                        items
                            .into_iter()
                            .map(|v| text(&key, v))
                            .collect::<Result<_, _>>()?,
                    );
                }
                _ => return Err("`nodes` must be a list of node names".into()),
            },
            // Other keys belong to the Mix task, not to us.
            _ => {}
        }
    }
    Ok(())
}

fn text(key: &str, value: Value) -> Result<String, String> {
    match value {
        Value::Atom(s) | Value::Str(s) => Ok(s),
        _ => Err(format!("`{key}` must be an atom or a string")),
    }
}

/// Tokens with their line numbers. Strings resolve `#{config_env()}`,
/// `#{Mix.env()}`, `#{config_target()}` and `#{Mix.target()}`; other
/// interpolations become an `Other` token, which no value accepts.
fn tokenize(text: &str, build: MixBuild<'_>) -> Result<Vec<(usize, Tok)>, (usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                let start = line;
                let (s, next, lines, plain) = string(&chars, i + 1, build)
                    .ok_or((start, "a string is not closed".to_owned()))?;
                line += lines;
                i = next;
                if chars.get(i) == Some(&':') && chars.get(i + 1).is_some_and(|c| c.is_whitespace())
                {
                    toks.push((start, Tok::Key(s)));
                    i += 1;
                } else if plain {
                    toks.push((start, Tok::Str(s)));
                } else {
                    toks.push((start, Tok::Other("an interpolated string".into())));
                }
            }
            ':' if chars.get(i + 1) == Some(&'"') => {
                let start = line;
                let (s, next, lines, plain) = string(&chars, i + 2, build)
                    .ok_or((start, "an atom is not closed".to_owned()))?;
                line += lines;
                i = next;
                toks.push((
                    start,
                    if plain {
                        Tok::Atom(s)
                    } else {
                        Tok::Other("an interpolated atom".into())
                    },
                ));
            }
            ':' if chars.get(i + 1).is_some_and(|c| ident(*c)) => {
                let mut j = i + 1;
                while j < chars.len() && (ident(chars[j]) || chars[j] == '.' || chars[j] == '@') {
                    j += 1;
                }
                if j < chars.len() && (chars[j] == '?' || chars[j] == '!') {
                    j += 1;
                }
                toks.push((line, Tok::Atom(chars[i + 1..j].iter().collect())));
                i = j;
            }
            c if c.is_ascii_digit() => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '.')
                {
                    j += 1;
                }
                toks.push((line, Tok::Num(chars[i..j].iter().collect())));
                i = j;
            }
            c if ident(c) => {
                let mut j = i;
                while j < chars.len() && (ident(chars[j]) || chars[j] == '.') {
                    j += 1;
                }
                if j < chars.len() && (chars[j] == '?' || chars[j] == '!') {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                if chars.get(j) == Some(&':') && chars.get(j + 1).is_some_and(|c| c.is_whitespace())
                {
                    toks.push((line, Tok::Key(word)));
                    j += 1;
                } else {
                    toks.push((line, Tok::Ident(word)));
                }
                i = j;
            }
            '[' | ']' | '(' | ')' | ',' | '{' | '}' => {
                toks.push((line, Tok::Punct(c)));
                i += 1;
            }
            other => {
                toks.push((line, Tok::Other(other.to_string())));
                i += 1;
            }
        }
    }
    Ok(toks)
}

/// Reads a string body from `i` (after the opening quote). Returns the
/// text, the index after the closing quote, the newlines crossed, and
/// whether every interpolation could be resolved.
fn string(
    chars: &[char],
    mut i: usize,
    build: MixBuild<'_>,
) -> Option<(String, usize, usize, bool)> {
    let mut out = String::new();
    let mut lines = 0;
    let mut plain = true;
    while i < chars.len() {
        match chars[i] {
            '"' => return Some((out, i + 1, lines, plain)),
            '\\' => {
                let c = *chars.get(i + 1)?;
                out.push(match c {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
                i += 2;
            }
            '#' if chars.get(i + 1) == Some(&'{') => {
                let end = (i + 2..chars.len()).find(|&j| chars[j] == '}')?;
                let expr: String = chars[i + 2..end]
                    .iter()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                match expr.as_str() {
                    "config_env()" | "Mix.env()" | "Mix.env" => out.push_str(build.env),
                    "config_target()" | "Mix.target()" | "Mix.target" => {
                        out.push_str(build.target.unwrap_or("host"))
                    }
                    _ => plain = false,
                }
                i = end + 1;
            }
            c => {
                if c == '\n' {
                    lines += 1;
                }
                out.push(c);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        files: &[(&str, &str)],
        target: Option<&str>,
    ) -> Result<Option<FileConfig>, ConfigError> {
        let dir = tempfile::tempdir().expect("tmp");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let build = MixBuild { env: "dev", target };
        read_upload_hotswap(&dir.path().join("config.exs"), build)
    }

    #[test]
    fn reads_the_seed_block() {
        let cfg = read(
            &[(
                "config.exs",
                r#"import Config

# The device to deploy to.
config :logger, level: String.to_atom("debug") # other apps may hold code

config :mix_tasks_upload_hotswap,
  app_name: :example,   # the app
  nodes: [
    :"example@nerves.local", # first
    "other@10.0.0.2"
  ],
  cookie: :"secret token shared between nodes"
"#,
            )],
            None,
        )
        .expect("ok")
        .expect("found");
        assert_eq!(cfg.app_name.as_deref(), Some("example"));
        assert_eq!(
            cfg.nodes,
            Some(vec!["example@nerves.local".into(), "other@10.0.0.2".into()])
        );
        assert_eq!(
            cfg.cookie.as_deref(),
            Some("secret token shared between nodes")
        );
    }

    #[test]
    fn follows_imports_with_later_files_winning() {
        let files = [
            ("config.exs", "import Config\nconfig :mix_tasks_upload_hotswap, app_name: :a, cookie: \"c\"\nimport_config \"#{config_env()}.exs\"\nif Mix.target() != :host do\n  import_config \"target.exs\"\nend\n"),
            ("dev.exs", "import Config\nconfig(:mix_tasks_upload_hotswap, [nodes: [:\"dev@host\"]])\n"),
            ("target.exs", "import Config\nconfig :mix_tasks_upload_hotswap, nodes: [:\"dev@nerves.local\"]\n"),
        ];
        let host = read(&files, None).expect("ok").expect("found");
        assert_eq!(host.nodes, Some(vec!["dev@host".into()]));
        assert_eq!(host.app_name.as_deref(), Some("a"));
        let device = read(&files, Some("rpi4")).expect("ok").expect("found");
        assert_eq!(device.nodes, Some(vec!["dev@nerves.local".into()]));
    }

    #[test]
    fn code_in_the_block_is_an_error_with_file_and_line() {
        let err = read(
            &[("config.exs", "import Config\n\nconfig :mix_tasks_upload_hotswap,\n  app_name: :example,\n  cookie: System.get_env(\"COOKIE\")\n")],
            None,
        )
        .expect_err("code");
        let text = err.to_string();
        assert!(text.contains("config.exs` line 5"), "{text}");
        assert!(
            text.contains("System.get_env") && text.contains("hotswap.toml"),
            "{text}"
        );
    }

    #[test]
    fn no_block_is_none() {
        assert!(read(
            &[(
                "config.exs",
                "import Config\nconfig :logger, level: :info\n"
            )],
            None
        )
        .expect("ok")
        .is_none());
    }
}
