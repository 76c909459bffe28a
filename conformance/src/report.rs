//! Results for people and for tools: Markdown tables (case × implementation),
//! JSON, and JUnit XML for CI systems.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::cases::Run;
use crate::runner::{Outcome, Verdict};

/// The Markdown report: a table of server cases (case × server), a table
/// of client cases (case × client → server), then every failure in full.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let (servers, clients): (Vec<&Outcome>, Vec<&Outcome>) =
        outcomes.iter().partition(|o| matches!(o.case.run, Run::Server(_)));
    if !servers.is_empty() {
        out.push_str("### Server cases\n\n");
        out.push_str(&table(&servers, |o| o.server.clone()));
    }
    if !clients.is_empty() {
        out.push_str("\n### Client cases (client → server)\n\n");
        out.push_str(&table(&clients, |o| format!("{} → {}", o.client.as_deref().unwrap_or("?"), o.server)));
    }
    let (passed, failed, na) = counts(outcomes);
    let _ = writeln!(out, "\n{passed} passed, {failed} failed, {na} not applicable, of {}.", outcomes.len());
    let problems: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Verdict::Pass => None,
            Verdict::Fail(why) => {
                Some(format!("- **FAIL** `{}` (SPEC.md {}) [{}]: {why}", o.case.id, o.case.spec, o.subject()))
            }
            Verdict::NotApplicable(why) => Some(format!("- n/a `{}` [{}]: {why}", o.case.id, o.subject())),
        })
        .collect();
    if !problems.is_empty() {
        out.push('\n');
        out.push_str(&problems.join("\n"));
        out.push('\n');
    }
    out
}

/// (passed, failed, not applicable).
pub fn counts(outcomes: &[Outcome]) -> (usize, usize, usize) {
    let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
    (
        count(|v| matches!(v, Verdict::Pass)),
        count(|v| matches!(v, Verdict::Fail(_))),
        count(|v| matches!(v, Verdict::NotApplicable(_))),
    )
}

/// One table: a row per case (in catalogue order), a column per subject.
fn table(outcomes: &[&Outcome], column: impl Fn(&Outcome) -> String) -> String {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<&'static str> = Vec::new();
    let mut cells: BTreeMap<(&'static str, String), String> = BTreeMap::new();
    for outcome in outcomes {
        let name = column(outcome);
        if !columns.contains(&name) {
            columns.push(name.clone());
        }
        if !rows.contains(&outcome.case.id) {
            rows.push(outcome.case.id);
        }
        let cell = match outcome.verdict {
            Verdict::Pass => format!("pass {}", millis(outcome)),
            Verdict::Fail(_) => format!("**FAIL** {}", millis(outcome)),
            Verdict::NotApplicable(_) => "n/a".to_owned(),
        };
        cells.insert((outcome.case.id, name), cell);
    }
    let mut out = format!("| case | {} |\n|---|{}\n", columns.join(" | "), "---|".repeat(columns.len()));
    for row in rows {
        let line: Vec<&str> = columns.iter().map(|c| cells.get(&(row, c.clone())).map_or("", String::as_str)).collect();
        let _ = writeln!(out, "| `{row}` | {} |", line.join(" | "));
    }
    out
}

fn millis(outcome: &Outcome) -> String {
    format!("{} ms", outcome.elapsed.as_millis())
}

/// One outcome, as JSON sees it.
#[derive(Debug, Serialize)]
struct Record<'a> {
    case: &'a str,
    role: &'a str,
    spec: &'a str,
    description: &'a str,
    server: &'a str,
    client: Option<&'a str>,
    verdict: &'a str,
    reason: Option<&'a str>,
    millis: u128,
}

/// Every outcome as a JSON array.
pub fn json(outcomes: &[Outcome]) -> String {
    let records: Vec<Record<'_>> = outcomes
        .iter()
        .map(|o| Record {
            case: o.case.id,
            role: if matches!(o.case.run, Run::Server(_)) { "server" } else { "client" },
            spec: o.case.spec,
            description: o.case.description,
            server: &o.server,
            client: o.client.as_deref(),
            verdict: o.verdict.word(),
            reason: match &o.verdict {
                Verdict::Pass => None,
                Verdict::Fail(why) | Verdict::NotApplicable(why) => Some(why),
            },
            millis: o.elapsed.as_millis(),
        })
        .collect();
    serde_json::to_string_pretty(&records).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// JUnit XML: a test suite per subject (`server std`, `client std → server
/// tokio`), a test case per case, classed by that subject too (reporters
/// group by class name: one implementation's cases together, never the
/// same case name twice in a group), its SPEC.md section in its name;
/// failures carry their message and `rerun` with `--case ID`, the command
/// that reruns that case alone; cases that do not apply are skipped with
/// the reason. The form Jenkins, GitLab and GitHub's test reporters read.
pub fn junit(outcomes: &[Outcome], rerun: &str) -> String {
    let mut suites: BTreeMap<String, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        suites.entry(outcome.subject()).or_default().push(outcome);
    }
    let (_, failed, skipped) = counts(outcomes);
    let total: f64 = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"ferry-conformance\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{total:.3}\">",
        outcomes.len()
    );
    for (subject, outcomes) in suites {
        let (_, failed, skipped) = counts_of(&outcomes);
        let time: f64 = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml(&subject),
            outcomes.len()
        );
        for outcome in outcomes {
            let name = format!("{} (SPEC.md {})", outcome.case.id, outcome.case.spec);
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&subject),
                xml(&name),
                outcome.elapsed.as_secs_f64()
            );
            match &outcome.verdict {
                Verdict::Pass => out.push_str("/>\n"),
                Verdict::Fail(why) => {
                    let text = format!("{why}\nrerun: {rerun} --case {}", outcome.case.id);
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(why),
                        xml(&text)
                    );
                }
                Verdict::NotApplicable(why) => {
                    let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(why));
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn counts_of(outcomes: &[&Outcome]) -> (usize, usize, usize) {
    let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
    (
        count(|v| matches!(v, Verdict::Pass)),
        count(|v| matches!(v, Verdict::Fail(_))),
        count(|v| matches!(v, Verdict::NotApplicable(_))),
    )
}

/// Text made safe for an XML attribute or element: the five entities
/// escaped, and characters XML 1.0 cannot hold at all shown as `\u{..}`.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
