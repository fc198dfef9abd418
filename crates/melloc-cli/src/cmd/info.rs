//! `melloc info`: what a file holds, without decoding values.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use melloc_format::route::{RouteId, SliceInfo};
use melloc_format::{FileInfo, Shape};

use crate::cli::InfoArgs;
use crate::cmd::{check_inputs, for_each_file};
use crate::input::{display_name, read_all};
use crate::ui::{self, Ui};

/// Runs the subcommand; returns the number of failed inputs.
pub fn run(args: &InfoArgs, ui: &Ui) -> Result<usize> {
    check_inputs(&args.files, None)?;
    let _ = ui;
    let mut infos = Vec::new();
    let n_failed = for_each_file(&args.files, |input| {
        let name = display_name(input);
        let bytes = read_all(input)?;
        let info = melloc_format::inspect(&bytes)
            .with_context(|| format!("reading the header of {name}"))?;
        if args.json {
            infos.push(info);
        } else {
            print!("{}", render(&name, &info, args.slices));
        }
        Ok(())
    });
    if args.json {
        let text = if args.files.len() == 1 {
            infos.first().map(serde_json::to_string_pretty).transpose()
        } else {
            serde_json::to_string_pretty(&infos).map(Some)
        }
        .context("serialising the file information as JSON")?;
        if let Some(text) = text {
            println!("{text}");
        }
    }
    Ok(n_failed)
}

/// `causal 2, paper 1`: chunks per route, in order of first use.
pub fn route_counts(routes: impl IntoIterator<Item = RouteId>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for route in routes {
        let name = route.name();
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, k)) => *k += 1,
            None => counts.push((name, 1)),
        }
    }
    if counts.is_empty() {
        return "none".to_string();
    }
    counts
        .iter()
        .map(|(n, k)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human-readable report.
pub fn render(name: &str, info: &FileInfo, all_slices: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{name}");
    let _ = writeln!(s, "  format    {}.{}", info.version.0, info.version.1);
    let _ = writeln!(s, "  dtype     {}", info.dtype);
    let dims: Vec<String> = info.shape.iter().map(u64::to_string).collect();
    let layout = Shape::new(&info.shape).ok().map(|sh| sh.slices());
    let _ = match layout {
        Some(l) => writeln!(
            s,
            "  shape     {} (C order, slowest first: {} slice{} of {}x{})",
            dims.join("x"),
            l.n_slices,
            if l.n_slices == 1 { "" } else { "s" },
            l.n_rows,
            l.n_cols
        ),
        None => writeln!(s, "  shape     {}", dims.join("x")),
    };
    let _ = writeln!(
        s,
        "  size      {} -> {} bytes ({})",
        info.original_bytes,
        info.compressed_bytes,
        ui::ratio(info.original_bytes, info.compressed_bytes)
    );
    let _ = writeln!(s, "  checksum  xxh3-64 {:016x}", info.content_checksum);
    let _ = writeln!(
        s,
        "  chunks    {} (routes: {})",
        info.chunks.len(),
        route_counts(info.chunks.iter().map(|c| c.route))
    );

    // Section totals over all chunks, per (route, kind, back end).
    let mut totals: Vec<(&str, u8, &str, u64, u64)> = Vec::new();
    for c in &info.chunks {
        for sec in &c.sections {
            let key = (c.route.name(), sec.kind, sec.backend.as_str());
            match totals.iter_mut().find(|t| (t.0, t.1, t.2) == key) {
                Some(t) => {
                    t.3 += sec.raw_bytes;
                    t.4 += sec.stored_bytes;
                }
                None => totals.push((key.0, key.1, key.2, sec.raw_bytes, sec.stored_bytes)),
            }
        }
    }
    if !totals.is_empty() {
        let _ = writeln!(
            s,
            "  sections  (route, kind, back end: raw -> stored, summed over chunks)"
        );
        for (route, kind, backend, raw, stored) in &totals {
            let _ = writeln!(
                s,
                "    {route:<7} kind {kind:<3} {backend:<8} {raw} -> {stored} bytes"
            );
        }
    }

    for (i, c) in info.chunks.iter().enumerate() {
        let stored: u64 = c.sections.iter().map(|x| x.stored_bytes).sum();
        let full_slices = layout.is_none_or(|l| c.first_row == 0 && c.n_rows == l.n_rows);
        let span = if full_slices {
            format!(
                "slices {}..{}",
                c.first_slice,
                c.first_slice.saturating_add(c.n_slices)
            )
        } else {
            format!(
                "slice {} rows {}..{}",
                c.first_slice,
                c.first_row,
                c.first_row.saturating_add(c.n_rows)
            )
        };
        let _ = writeln!(
            s,
            "  chunk {i}  {span}  route {}  {stored} bytes",
            c.route.name()
        );
        let ri = &c.route_info;
        if !ri.integerisation.is_empty() {
            let _ = writeln!(s, "    integerisation: {}", ri.integerisation);
        }
        let n_show = if all_slices { ri.slices.len() } else { 1 };
        for (k, sl) in ri.slices.iter().take(n_show).enumerate() {
            let idx = c.first_slice.saturating_add(k as u64);
            let _ = writeln!(s, "    slice {idx}: {}", slice_text(sl, all_slices));
        }
        if let Some(rest) = ri.slices.get(n_show..).filter(|r| !r.is_empty()) {
            let first = c.first_slice.saturating_add(n_show as u64);
            let _ = writeln!(
                s,
                "    slices {first}..{} ({} more; --slices lists them): {}",
                first.saturating_add(rest.len() as u64),
                rest.len(),
                slices_summary(rest)
            );
        }
        for note in &ri.notes {
            let _ = writeln!(s, "    note: {note}");
        }
    }
    s
}

/// `pde elliptic 18, hyperbolic 2; f step 1.000e-2 .. 4.000e-2` over several slices.
fn slices_summary(slices: &[SliceInfo]) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for sl in slices {
        let kind = sl
            .pde
            .as_deref()
            .map_or("none", |p| p.split_once(':').map_or(p, |(k, _)| k).trim());
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let mut parts = Vec::new();
    if kinds.iter().any(|(k, _)| *k != "none") {
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        parts.push(format!("pde {}", list.join(", ")));
    }
    let steps: Vec<f64> = slices.iter().filter_map(|sl| sl.f_step).collect();
    if let (Some(lo), Some(hi)) = (
        steps.iter().copied().reduce(f64::min),
        steps.iter().copied().reduce(f64::max),
    ) {
        parts.push(format!("f step {lo:.3e} .. {hi:.3e}"));
    }
    if parts.is_empty() {
        "no learned mechanism".to_string()
    } else {
        parts.join("; ")
    }
}

fn slice_text(sl: &SliceInfo, with_stencil: bool) -> String {
    let mut parts = Vec::new();
    if let Some(pde) = &sl.pde {
        parts.push(format!("pde {pde}"));
    }
    if let Some(step) = sl.f_step {
        parts.push(format!("f step {step:.3e}"));
    }
    if with_stencil {
        if let Some(c) = &sl.stencil {
            let cs: Vec<String> = c.iter().map(|v| format!("{v:.4}")).collect();
            parts.push(format!("stencil [{}]", cs.join(", ")));
        }
    }
    if parts.is_empty() {
        "no learned mechanism".to_string()
    } else {
        parts.join(", ")
    }
}
