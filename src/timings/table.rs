//! A run's recorded stages as rows: the table `--timings` prints, and the
//! `timings` object of `--json`.

use super::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

/// The stages of reaching a node, shown as one row per node.
const CONNECTING: [&str; 6] = [
    "remembered port",
    "epmd",
    "tcp",
    "our registration",
    "tls",
    "handshake",
];

/// A run's (or a watch's change's) recorded stages, from `origin` to `end`.
#[derive(Debug)]
pub struct Timings {
    origin: Instant,
    end: Instant,
    rows: Vec<Row>,
    /// Round trips to the node that had the most.
    trips: u32,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stage: String,
    pub node: Option<String>,
    /// Milliseconds from the origin to its start, and its length.
    pub at_ms: f64,
    pub took_ms: f64,
    pub trips: u32,
    /// For `connect`: how long each of its parts took, in order.
    pub parts: Vec<(&'static str, f64)>,
    /// The earlier stage it ran alongside longest, if any.
    pub alongside: Option<String>,
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

impl Timings {
    pub fn new(
        origin: Instant,
        end: Instant,
        spans: Vec<Span>,
        trips: Vec<(String, Instant)>,
    ) -> Timings {
        let counted = |node: Option<&str>, from: Instant, to: Instant| -> u32 {
            let mut by_node: BTreeMap<&str, u32> = BTreeMap::new();
            for (n, at) in &trips {
                if *at >= from && *at <= to && node.is_none_or(|node| node == n) {
                    *by_node.entry(n).or_default() += 1;
                }
            }
            by_node.values().copied().max().unwrap_or(0)
        };
        let (connecting, other): (Vec<Span>, Vec<Span>) = spans
            .into_iter()
            .partition(|s| s.node.is_some() && CONNECTING.contains(&s.stage));
        let mut rows: Vec<(Instant, Instant, Row)> = Vec::new();
        for s in other {
            let row = Row {
                stage: s.stage.to_owned(),
                trips: s.trips + counted(s.node.as_deref(), s.from, s.to),
                node: s.node,
                at_ms: ms(origin, s.from),
                took_ms: ms(s.from, s.to),
                parts: Vec::new(),
                alongside: None,
            };
            rows.push((s.from, s.to, row));
        }
        let mut by_node: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        for s in connecting {
            by_node
                .entry(s.node.clone().unwrap_or_default())
                .or_default()
                .push(s);
        }
        for (node, spans) in by_node {
            let (Some(from), Some(to)) = (
                spans.iter().map(|s| s.from).min(),
                spans.iter().map(|s| s.to).max(),
            ) else {
                continue;
            };
            let row = Row {
                stage: "connect".to_owned(),
                node: Some(node),
                at_ms: ms(origin, from),
                took_ms: ms(from, to),
                trips: spans.iter().map(|s| s.trips).sum(),
                parts: spans.iter().map(|s| (s.stage, ms(s.from, s.to))).collect(),
                alongside: None,
            };
            rows.push((from, to, row));
        }
        // In order of start; at one instant, the whole run's first, then
        // the nodes' by name.
        rows.sort_by(|(a, _, ra), (b, _, rb)| (a, &ra.node).cmp(&(b, &rb.node)));
        mark_alongside(&mut rows);
        let trips = trips
            .iter()
            .fold(BTreeMap::<&str, u32>::new(), |mut m, (n, _)| {
                *m.entry(n).or_default() += 1;
                m
            });
        let connect_trips: BTreeMap<&str, u32> = rows
            .iter()
            .filter(|(_, _, r)| r.stage == "connect")
            .filter_map(|(_, _, r)| Some((r.node.as_deref()?, r.trips)))
            .collect();
        let nodes: BTreeSet<&str> = trips.keys().chain(connect_trips.keys()).copied().collect();
        let most = nodes
            .iter()
            .map(|n| {
                trips.get(n).copied().unwrap_or(0) + connect_trips.get(n).copied().unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        Timings {
            origin,
            end,
            trips: most,
            rows: rows.into_iter().map(|(_, _, r)| r).collect(),
        }
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// From the origin to the end, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        ms(self.origin, self.end)
    }

    /// The time no stage covers: between stages, and what no stage names.
    pub fn unaccounted_ms(&self) -> f64 {
        let mut spans: Vec<(f64, f64)> = self
            .rows
            .iter()
            .map(|r| (r.at_ms, r.at_ms + r.took_ms))
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut covered, mut reach) = (0.0, 0.0_f64);
        for (from, to) in spans {
            let from = from.max(reach);
            if to > from {
                covered += to - from;
            }
            reach = reach.max(to);
        }
        (self.total_ms() - covered).max(0.0)
    }

    /// The table, with `what` (such as "deploy") in its first line.
    pub fn table(&self, what: &str) -> String {
        let total = self.total_ms();
        let share = |took: f64| match total > 0.0 {
            true => format!("{:.1}%", took / total * 1e2),
            false => "-".to_owned(),
        };
        let trips = match self.trips {
            1 => "1 round trip".to_owned(),
            n => format!("{n} round trips"),
        };
        let mut out = format!(
            "Timings of this {what}: {total:.1} ms, {trips} to the node that had the most\n"
        );
        let _ = writeln!(
            out,
            "  {:>8} {:>8} {:>6} {:>5}  stage",
            "at ms", "took ms", "share", "trips"
        );
        for r in &self.rows {
            let mut stage = r.stage.clone();
            if let Some(node) = &r.node {
                let _ = write!(stage, " {node}");
            }
            if !r.parts.is_empty() {
                let parts: Vec<String> =
                    r.parts.iter().map(|(p, t)| format!("{p} {t:.1}")).collect();
                let _ = write!(stage, " ({})", parts.join(", "));
            }
            if let Some(other) = &r.alongside {
                let _ = write!(stage, "  ∥ {other}");
            }
            let trips = match r.trips {
                0 => "-".to_owned(),
                n => n.to_string(),
            };
            let _ = writeln!(
                out,
                "  {:>8.1} {:>8.1} {:>6} {:>5}  {stage}",
                r.at_ms,
                r.took_ms,
                share(r.took_ms),
                trips
            );
        }
        let gaps = self.unaccounted_ms();
        let _ = writeln!(
            out,
            "  {:>8} {gaps:>8.1} {:>6} {:>5}  between the stages",
            "",
            share(gaps),
            ""
        );
        out.push_str("  ∥ ran alongside that stage: shares add up to more than 100%");
        out
    }

    /// The `timings` object of `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let stages: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let parts: serde_json::Map<String, serde_json::Value> = r
                    .parts
                    .iter()
                    .map(|(p, t)| ((*p).to_owned(), serde_json::json!(round(*t))))
                    .collect();
                serde_json::json!({
                    "stage": r.stage,
                    "node": r.node,
                    "at_ms": round(r.at_ms),
                    "took_ms": round(r.took_ms),
                    "trips": r.trips,
                    "parts": parts,
                    "alongside": r.alongside,
                })
            })
            .collect();
        serde_json::json!({
            "total_ms": round(self.total_ms()),
            "between_stages_ms": round(self.unaccounted_ms()),
            "round_trips": self.trips,
            "stages": stages,
        })
    }
}

/// To the microsecond.
fn round(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

/// Names, for each row, the earlier row it overlaps longest.
fn mark_alongside(rows: &mut [(Instant, Instant, Row)]) {
    for i in 1..rows.len() {
        let (from, to) = (rows[i].0, rows[i].1);
        let best = rows[..i]
            .iter()
            .map(|(f, t, r)| (to.min(*t).saturating_duration_since(from.max(*f)), r))
            .filter(|(overlap, _)| !overlap.is_zero())
            .max_by_key(|(overlap, _)| *overlap)
            .map(|(_, r)| {
                // Its name without what the parentheses add.
                let short = r.stage.split(" (").next().unwrap_or(&r.stage);
                match &r.node {
                    Some(node) => format!("{short} {node}"),
                    None => short.to_owned(),
                }
            });
        rows[i].2.alongside = best;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(origin: Instant, ms: u64) -> Instant {
        origin + Duration::from_millis(ms)
    }

    fn span(
        origin: Instant,
        stage: &'static str,
        node: Option<&str>,
        from: u64,
        to: u64,
        trips: u32,
    ) -> Span {
        Span {
            stage,
            node: node.map(str::to_owned),
            from: at(origin, from),
            to: at(origin, to),
            trips,
        }
    }

    #[test]
    fn connecting_is_a_row_per_node_and_requests_count_against_their_node() {
        let o = Instant::now();
        let spans = vec![
            span(o, "settings", None, 0, 2, 0),
            span(o, "read beams", None, 2, 6, 0),
            span(o, "epmd", Some("a@h"), 2, 3, 2),
            span(o, "handshake", Some("a@h"), 3, 5, 2),
            span(o, "epmd", Some("b@h"), 2, 4, 2),
            span(o, "handshake", Some("b@h"), 4, 7, 2),
            span(o, "inspect", None, 7, 9, 0),
            span(o, "point of no return", None, 9, 12, 0),
        ];
        let trips = vec![
            ("a@h".to_owned(), at(o, 7)),
            ("b@h".to_owned(), at(o, 7)),
            ("a@h".to_owned(), at(o, 10)),
            ("a@h".to_owned(), at(o, 11)),
        ];
        let t = Timings::new(o, at(o, 20), spans, trips);
        let stages: Vec<String> = t
            .rows()
            .iter()
            .map(|r| {
                format!(
                    "{}{}",
                    r.stage,
                    r.node.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            stages,
            [
                "settings",
                "read beams",
                "connect a@h",
                "connect b@h",
                "inspect",
                "point of no return"
            ]
        );
        let row = |name: &str| t.rows().iter().find(|r| r.stage == name).expect("row");
        assert_eq!(
            row("connect").parts,
            vec![("epmd", 1.0), ("handshake", 2.0)]
        );
        assert_eq!(row("connect").trips, 4);
        assert_eq!(row("connect").alongside.as_deref(), Some("read beams"));
        assert_eq!(row("inspect").trips, 1);
        assert_eq!(row("point of no return").trips, 2);
        // a@h: 4 connecting, 3 requests.
        assert_eq!(t.trips, 7);
        assert!((t.total_ms() - 20.0).abs() < 1e-9);
        assert!(
            (t.unaccounted_ms() - 8.0).abs() < 1e-9,
            "{}",
            t.unaccounted_ms()
        );
        let table = t.table("deploy");
        assert!(
            table.starts_with("Timings of this deploy: 20.0 ms, 7 round trips"),
            "{table}"
        );
        assert!(
            table.contains("connect a@h (epmd 1.0, handshake 2.0)  ∥ read beams"),
            "{table}"
        );
        let json = t.to_json();
        assert_eq!(json["stages"][2]["parts"]["handshake"], 2.0);
        assert_eq!(json["between_stages_ms"], 8.0);
    }
}
