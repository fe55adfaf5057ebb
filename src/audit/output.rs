//! The report as `--json` writes it (a documented, stable shape: README, `audit`), as the human
//! summary, and the progress display.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{AuditOptions, Checked, Finding, Progress, Report};

/// The `--json` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonReport<'a> {
    /// The database audited, password masked.
    pub database: String,
    /// No finding at all.
    pub clean: bool,
    /// The one buyer audited (`--buyer`), or null for all.
    pub buyer: Option<i64>,
    pub chunk_buyers: i64,
    pub chunks: u64,
    pub elapsed_ms: u64,
    pub checked: Checked,
    /// Whether charges had to have `points.charged` events.
    pub charge_events_checked: bool,
    /// Per event type, how far pruning had gone.
    pub pruned: Vec<PrunedJson>,
    /// Every finding kind with how many were found (0 included).
    pub finding_counts: BTreeMap<&'static str, u64>,
    pub findings_total: u64,
    /// More findings were counted than `findings` lists (`--max-findings`).
    pub findings_truncated: bool,
    pub findings: &'a [Finding],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrunedJson {
    pub event_type: String,
    /// RFC 3339, UTC: every pruned event of the type occurred at or before this.
    pub occurred_through: String,
    pub seq_through: i64,
    pub events: i64,
}

impl Report {
    /// The `--json` document of this report.
    pub fn to_json<'a>(&'a self, database: String, options: &AuditOptions) -> JsonReport<'a> {
        JsonReport {
            database,
            clean: self.is_clean(),
            buyer: options.buyer,
            chunk_buyers: options.chunk_buyers,
            chunks: self.chunks,
            elapsed_ms: u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            checked: self.checked,
            charge_events_checked: self.charge_events_checked,
            pruned: self
                .watermarks
                .iter()
                .map(|mark| PrunedJson {
                    event_type: mark.event_type.clone(),
                    occurred_through: mark.occurred_through.and_utc().to_rfc3339(),
                    seq_through: mark.seq_through,
                    events: mark.events,
                })
                .collect(),
            finding_counts: self
                .findings
                .counts
                .iter()
                .map(|(kind, n)| (kind.name(), *n))
                .collect(),
            findings_total: self.findings.total(),
            findings_truncated: self.findings.truncated(),
            findings: &self.findings.kept,
        }
    }

    /// The summary for a person: what was checked, what was found.
    pub fn summary(&self, database: &str) -> String {
        let c = &self.checked;
        let mut out = format!(
            "audit of {database}: {} chunk(s) in {:.1} s\n\
             checked {} balances, {} ledger entries, {} orders, {} payments, {} refunds, \
             {} events (charge events {})\n",
            self.chunks,
            self.elapsed.as_secs_f64(),
            c.balances,
            c.ledger_entries,
            c.orders,
            c.payments,
            c.refunds,
            c.events,
            if self.charge_events_checked {
                "checked"
            } else {
                "not required"
            },
        );
        for mark in &self.watermarks {
            out += &format!(
                "pruned {} {} events, occurred through {}\n",
                mark.events,
                mark.event_type,
                mark.occurred_through.and_utc().to_rfc3339()
            );
        }
        if self.is_clean() {
            out += "clean: no findings\n";
            return out;
        }
        out += &format!("{} finding(s):\n", self.findings.total());
        for (kind, n) in self.findings.counts.iter().filter(|(_, n)| **n > 0) {
            out += &format!("  {:<30} {n}\n", kind.name());
        }
        for finding in &self.findings.kept {
            out += &format!("  - {}\n", describe(finding));
        }
        if self.findings.truncated() {
            out += &format!("  ... {} listed\n", self.findings.kept.len());
        }
        out
    }
}

/// One finding on one line: kind, the ids that apply, the detail.
fn describe(finding: &Finding) -> String {
    let ids = [
        ("buyer", finding.buyer_id),
        ("order", finding.order_id),
        ("payment", finding.payment_id),
        ("refund", finding.refund_id),
        ("version", finding.version),
        ("event seq", finding.event_seq),
    ];
    let named: Vec<String> = ids
        .iter()
        .filter_map(|(name, id)| id.map(|id| format!("{name} {id}")))
        .collect();
    format!(
        "{} ({}): {}",
        finding.kind.name(),
        named.join(", "),
        finding.detail
    )
}

/// Shows progress on stderr: a bar on a terminal, else a plain line every few seconds.
pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

/// How often a plain progress line is written.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl ProgressDisplay {
    pub fn new() -> ProgressDisplay {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} buyers, {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        ProgressDisplay {
            bar,
            last_line: None,
        }
    }

    pub fn update(&mut self, progress: Progress) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(progress.buyers_total.max(progress.buyers_done));
                bar.set_position(progress.buyers_done);
                bar.set_message(format!("{} findings", progress.findings));
            }
            None if self.last_line.is_none_or(|at| at.elapsed() >= PLAIN_EVERY) => {
                self.last_line = Some(Instant::now());
                eprintln!(
                    "audit: {}/{} buyers, {} findings",
                    progress.buyers_done, progress.buyers_total, progress.findings
                );
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for ProgressDisplay {
    fn default() -> Self {
        ProgressDisplay::new()
    }
}
