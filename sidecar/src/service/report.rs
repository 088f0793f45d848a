//! `GET /report`: what the store holds, for a person to judge. Per source image the variant
//! matrix (format, pixel size, bytes, saving against the source, SSIMULACRA2 score, quality,
//! encodes, the client slots it answers) and every variant next to the original, each drawn at
//! the same width so the eye can compare them.
//!
//! The page is plain server-rendered HTML with no external assets: operators open it on the
//! sidecar's own port (loopback or admin token, like `/stats`). Originals are fetched through
//! the same origin client as the pipeline (`/report/source/{key}`: configured origins only,
//! size-capped), variants come from `/v/{key}/{mask}`. A small inline script counts the images
//! that loaded and the ones that broke, so a person (and the headless-browser test) sees at a
//! glance whether anything stored is unreadable.

use crate::store::{SourceMeta, Store, StoreError, VariantMeta};
use rendition_shared::{CapabilityMask, IndexRecord, KeyId};
use std::fmt::Write;

/// Sources per page: the page loads every image it shows, so it is paged.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 200;

/// One stored blob and every slot that it answers.
pub struct VariantRow {
    pub primary: CapabilityMask,
    pub slots: Vec<CapabilityMask>,
    pub meta: VariantMeta,
}

pub struct SourceReport {
    pub id: KeyId,
    pub record: IndexRecord,
    pub meta: SourceMeta,
    pub variants: Vec<VariantRow>,
}

pub struct Report {
    pub sources: Vec<SourceReport>,
    /// Sources in the store (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

/// Reads one page of sources (in key-id order) with their distinct variants.
pub fn gather(store: &Store, offset: usize, limit: usize) -> Result<Report, StoreError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut sources = Vec::new();
    let mut total = 0;
    for item in store.sources() {
        let (id, record, meta) = item?;
        total += 1;
        if total <= offset || sources.len() >= limit {
            continue;
        }
        let mut variants: Vec<VariantRow> = Vec::new();
        for slot in record.stored.iter() {
            let Some((primary, vmeta)) = store.variant_meta(&id, slot)? else {
                continue;
            };
            match variants.iter_mut().find(|v| v.primary == primary) {
                Some(row) => row.slots.push(slot),
                None => variants.push(VariantRow {
                    primary,
                    slots: vec![slot],
                    meta: vmeta,
                }),
            }
        }
        variants.sort_by(|a, b| {
            (&a.meta.content_type, a.meta.width, a.meta.bytes).cmp(&(
                &b.meta.content_type,
                b.meta.width,
                b.meta.bytes,
            ))
        });
        sources.push(SourceReport {
            id,
            record,
            meta,
            variants,
        });
    }
    Ok(Report {
        sources,
        total,
        offset,
        limit,
    })
}

/// Escapes text for HTML element content and double-quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `desktop 2x`, `mobile 1x save-data`: the client a slot serves.
fn slot_label(m: CapabilityMask) -> String {
    let mut s = format!("{} {}", m.viewport().name(), m.density().name());
    if m.save_data() {
        s.push_str(" save-data");
    }
    s
}

fn format_name(meta: &VariantMeta) -> String {
    let base = meta
        .content_type
        .strip_prefix("image/")
        .unwrap_or(&meta.content_type)
        .split('+')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if meta.lossless {
        format!("{base} lossless")
    } else {
        base
    }
}

/// Saving against the source, in percent (negative when larger).
fn saving(bytes: u64, source: u64) -> f64 {
    if source == 0 {
        return 0.0;
    }
    (1.0 - bytes as f64 / source as f64) * 100.0
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin:2rem 0 .3rem;word-break:break-all}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:10px}\
figure{margin:0;width:320px}figure img{width:320px;height:auto;background:\
repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 0 0/16px 16px;display:block}\
figcaption{font-size:12px}.refused{color:#a00}.broken{outline:3px solid red}";

/// Marks each image that failed, and writes the tally into `#images` and onto `<body>`
/// (`data-loaded`, `data-broken`) once the window has loaded every image.
const SCRIPT: &str = "addEventListener('load',()=>{let ok=0,bad=0;for(const i of document.images)\
{if(i.complete&&i.naturalWidth>0){ok++}else{bad++;i.classList.add('broken')}}\
document.body.dataset.loaded=ok;document.body.dataset.broken=bad;\
document.getElementById('images').textContent=ok+' images loaded, '+bad+' broken';});";

pub fn render(report: &Report) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let savings: Vec<f64> = report
        .sources
        .iter()
        .flat_map(|s| {
            s.variants
                .iter()
                .map(|v| saving(v.meta.bytes, s.meta.source_bytes))
        })
        .collect();
    let mean_saving = savings.iter().sum::<f64>() / savings.len().max(1) as f64;
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Rendition report</title>\
         <style>{STYLE}</style></head><body><h1>Rendition report</h1>\
         <p id=summary>{} sources in the store; this page: sources {}–{} with {} variants, \
         on average {:.0}% smaller than their source. <span id=images></span></p>",
        report.total,
        (report.offset + 1).min(report.total),
        report.offset + report.sources.len(),
        savings.len(),
        mean_saving,
    );
    pager(&mut h, report);
    for s in &report.sources {
        source_section(&mut h, s);
    }
    pager(&mut h, report);
    let _ = write!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

fn pager(h: &mut String, r: &Report) {
    let _ = write!(h, "<p class=pager>");
    if r.offset > 0 {
        let prev = r.offset.saturating_sub(r.limit);
        let _ = write!(
            h,
            "<a href=\"?offset={prev}&amp;limit={}\">previous</a> ",
            r.limit
        );
    }
    if r.offset + r.sources.len() < r.total {
        let next = r.offset + r.sources.len();
        let _ = write!(
            h,
            "<a href=\"?offset={next}&amp;limit={}\">next</a>",
            r.limit
        );
    }
    let _ = write!(h, "</p>");
}

/// "fresh for 9 more s (max-age 60)" or "stale for 12 s (max-age 60, must revalidate)".
fn freshness(m: &SourceMeta, now_ms: u64) -> String {
    let source = m.lifetime_source.as_deref().unwrap_or("unknown");
    let lifetime_ms = m.lifetime.saturating_mul(1000);
    let age = m.age_ms(now_ms);
    let rule = if m.must_revalidate {
        ", must revalidate"
    } else {
        ""
    };
    let (state, secs) = if age < lifetime_ms {
        ("fresh for", (lifetime_ms - age) / 1000)
    } else {
        ("stale for", (age - lifetime_ms) / 1000)
    };
    format!("{state} {secs} s ({} {} s{rule})", esc(source), m.lifetime)
}

fn source_section(h: &mut String, s: &SourceReport) {
    let m = &s.meta;
    let id = s.id;
    let _ = write!(
        h,
        "<section class=source data-key=\"{}\" data-variants={}><h2>{}</h2><p>{} {}×{}, {} bytes, {}",
        esc(&m.key),
        s.variants.len(),
        esc(&m.key),
        esc(m.format.as_deref().unwrap_or("?")),
        m.width,
        m.height,
        m.source_bytes,
        esc(m.class.as_deref().unwrap_or("unclassified")),
    );
    if let Some(why) = &m.refused {
        let _ = write!(
            h,
            " · <span class=refused>refused: {}</span></p></section>",
            esc(why)
        );
        return;
    }
    let _ = write!(
        h,
        " · {} variants for {} slots · {}</p>",
        s.variants.len(),
        s.record.stored.len(),
        freshness(m, crate::store::now_ms()),
    );
    let _ = write!(
        h,
        "<table class=matrix><tr><th class=l>format</th><th>pixels</th><th>bytes</th>\
         <th>saving</th><th>SSIMULACRA2</th><th>quality</th><th>encodes</th><th class=l>slots</th></tr>"
    );
    for v in &s.variants {
        let vm = &v.meta;
        let score = vm
            .score
            .map_or_else(|| "–".to_owned(), |x| format!("{x:.1}"));
        let slots: Vec<String> = v.slots.iter().map(|&m| slot_label(m)).collect();
        let _ = write!(
            h,
            "<tr class=variant><td class=l>{}</td><td>{}×{}</td><td>{}</td><td>{:.0}%</td>\
             <td class=score>{score}</td><td>{}</td><td>{}</td><td class=\"l slots\">{}</td></tr>",
            esc(&format_name(vm)),
            vm.width,
            vm.height,
            vm.bytes,
            saving(vm.bytes, m.source_bytes),
            vm.quality,
            vm.attempts,
            esc(&slots.join(", ")),
        );
    }
    let _ = write!(h, "</table>");
    for (slot, why) in &m.lost_reasons {
        if let Ok(mask) = CapabilityMask::from_bits(u32::from(*slot)) {
            let _ = write!(
                h,
                "<p class=lost>not stored: {} {}: {}</p>",
                esc(mask.format().name()),
                esc(&slot_label(mask)),
                esc(why)
            );
        }
    }
    let _ = write!(
        h,
        "<div class=grid><figure class=original><img src=\"/report/source/{id}\" alt=original>\
         <figcaption><b>original</b> {} {}×{} · {} bytes</figcaption></figure>",
        esc(m.format.as_deref().unwrap_or("?")),
        m.width,
        m.height,
        m.source_bytes
    );
    for v in &s.variants {
        let vm = &v.meta;
        let score = vm
            .score
            .map_or_else(String::new, |x| format!(" · SSIMULACRA2 {x:.1}"));
        let _ = write!(
            h,
            "<figure class=variant><img src=\"/v/{id}/{:x}\" alt=\"{}\"><figcaption><b>{}</b> \
             {}×{} · {} bytes ({:.0}% saved){score}</figcaption></figure>",
            v.primary.bits(),
            esc(&format_name(vm)),
            esc(&format_name(vm)),
            vm.width,
            vm.height,
            vm.bytes,
            saving(vm.bytes, m.source_bytes),
        );
    }
    let _ = write!(h, "</div></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn saving_is_relative_to_the_source() {
        assert!((saving(25, 100) - 75.0).abs() < 1e-9);
        assert!((saving(150, 100) + 50.0).abs() < 1e-9);
        assert_eq!(saving(1, 0), 0.0);
    }
}
