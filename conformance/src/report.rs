//! Results for people and for tools: Markdown tables (case × implementation)
//! and JSON.

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
            Verdict::Fail(why) => Some(format!("- **FAIL** `{}` [{}]: {why}", o.case.id, o.subject())),
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
