//! A picture of the tree: one row per height, the root on top, each node a
//! box under its parent (leaves as dots). Large trees are cut at a number
//! of nodes per row, with a note saying how many more there are.

use std::fmt::Write;
use std::path::Path;

use super::{NodeFacts, ROOT};
use crate::error::{Error, Result};
use crate::node::NodeId;

const WIDTH: f64 = 1200.0;
const ROW: f64 = 90.0;
const MAX_PER_ROW: usize = 200;

/// What the picture needs of a node (`None`: not running): from the
/// simulation, or from the statuses of a real run's nodes.
pub type Facts<'a> = &'a dyn Fn(NodeId) -> Option<NodeFacts>;

/// Rows of (node, parent's index in the row above), root first.
fn rows(facts: Facts<'_>) -> Vec<Vec<(NodeId, Option<usize>, usize)>> {
    let mut rows = vec![vec![(ROOT, None, 1)]];
    loop {
        let mut next = Vec::new();
        let mut more = 0;
        for (i, (id, _, _)) in rows.last().expect("a row").iter().enumerate() {
            let Some(d) = facts(*id) else {
                continue;
            };
            for k in d.kids {
                if next.len() < MAX_PER_ROW {
                    next.push((k, Some(i), 1));
                } else {
                    more += 1;
                }
            }
        }
        if next.is_empty() {
            return rows;
        }
        if let Some(last) = next.last_mut() {
            last.2 += more;
        }
        rows.push(next);
    }
}

pub fn write(path: &Path, facts: Facts<'_>, title: &str) -> Result<()> {
    let rows = rows(facts);
    let height = ROW * (rows.len() as f64 + 1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="10" y="20" font-size="16">{title}</text>"#);
    let x = |i: usize, n: usize| WIDTH * (i as f64 + 0.5) / n as f64;
    let y = |r: usize| ROW * (r as f64 + 0.8);
    for (r, row) in rows.iter().enumerate() {
        for (i, (_, parent, _)) in row.iter().enumerate() {
            if let Some(p) = parent {
                let _ = writeln!(
                    svg,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/>"##,
                    x(*p, rows[r - 1].len()),
                    y(r - 1) + 10.0,
                    x(i, row.len()),
                    y(r) - 10.0
                );
            }
        }
    }
    for (r, row) in rows.iter().enumerate() {
        for (i, (id, _, count)) in row.iter().enumerate() {
            let (cx, cy) = (x(i, row.len()), y(r));
            let d = facts(*id);
            if d.as_ref().is_none_or(|d| d.height == 0) {
                let _ = writeln!(
                    svg,
                    r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="#2ca02c"/>"##
                );
            } else if let Some(d) = d {
                let _ = writeln!(
                    svg,
                    r##"<rect x="{:.1}" y="{:.1}" width="44" height="20" rx="4" fill="#1f77b4"/><text x="{cx:.1}" y="{:.1}" fill="white" text-anchor="middle">h{} {}</text>"##,
                    cx - 22.0,
                    cy - 10.0,
                    cy + 4.0,
                    d.height,
                    d.total
                );
            }
            if *count > 1 {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}">+{} more</text>"#,
                    cx + 8.0,
                    cy + 4.0,
                    count - 1
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).map_err(|e| Error::io(path, e))
}
