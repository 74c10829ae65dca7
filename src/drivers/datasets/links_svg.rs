//! A picture of a link, as read from its nodes: input leaves on the left,
//! one column per layer of link nodes (each box shows its total), output
//! leaves on the right, an edge for every sender-receiver pair. Styled as
//! `tree_svg.rs`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::links::LinkResult;
use crate::error::{Error, Result};
use crate::node::NodeId;

const COL: f64 = 160.0;
const ROW: f64 = 26.0;
const TOP: f64 = 50.0;

pub fn write(path: &Path, r: &LinkResult, title: &str) -> Result<()> {
    let mut cols: Vec<Vec<NodeId>> = vec![r.leaves.iter().map(|l| l.0).collect()];
    cols.extend(r.layers.iter().map(|l| l.iter().map(|n| n.id).collect()));
    cols.push(r.output_ids.clone());
    let tallest = cols.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let (width, height) = (
        COL * cols.len() as f64 + 40.0,
        TOP + ROW * tallest as f64 + 20.0,
    );
    let mut at: BTreeMap<NodeId, (f64, f64)> = BTreeMap::new();
    for (c, col) in cols.iter().enumerate() {
        // Each column centred on the tallest one.
        let off = (tallest - col.len()) as f64 * ROW / 2.0;
        for (i, id) in col.iter().enumerate() {
            at.insert(
                *id,
                (40.0 + COL * c as f64, TOP + off + ROW * (i as f64 + 0.5)),
            );
        }
    }
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="10" y="20" font-size="16">{title}</text>"#);
    let mut line = |a: NodeId, b: NodeId| {
        if let (Some(p), Some(q)) = (at.get(&a), at.get(&b)) {
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/>"##,
                p.0 + 22.0,
                p.1,
                q.0 - 22.0,
                q.1
            );
        }
    };
    for &(leaf, to) in &r.leaves {
        if let Some(to) = to {
            line(leaf, to);
        }
    }
    for n in r.layers.iter().flatten() {
        for &rc in &n.receivers {
            line(n.id, rc);
        }
    }
    for &(leaf, _) in &r.leaves {
        let (x, y) = at[&leaf];
        let _ = writeln!(
            svg,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#2ca02c"/>"##
        );
    }
    for n in r.layers.iter().flatten() {
        let (x, y) = at[&n.id];
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="44" height="20" rx="4" fill="#1f77b4"/><text x="{x:.1}" y="{:.1}" fill="white" text-anchor="middle">{}</text>"##,
            x - 22.0,
            y - 10.0,
            y + 4.0,
            n.total
        );
    }
    for (o, t) in r.output_ids.iter().zip(&r.output_totals) {
        let (x, y) = at[o];
        let _ = writeln!(
            svg,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="#d62728"/><text x="{:.1}" y="{:.1}">{t}</text>"##,
            x + 8.0,
            y + 4.0
        );
    }
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).map_err(|e| Error::io(path, e))
}
