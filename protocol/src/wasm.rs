//! The top-level structure of a wasm binary, read without a full parser.
//!
//! A wasm file is an 8-byte preamble followed by sections, each `id: u8`, `size: LEB128 u32`,
//! then `size` bytes. Custom sections (id 0) start with a LEB128-prefixed name. This is the same
//! framing for core modules and components, which differ only in the preamble's version field.
//! That is all claims need: find, strip and append the `wasmcloud_jwt` custom section, and tell
//! a component from a core module before anything is compiled.

use std::ops::Range;

const MAGIC: &[u8; 4] = b"\0asm";
const MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Component-model preamble: version 0x0d, layer 1.
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// What kind of wasm binary a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    CoreModule,
    Component,
}

/// Why bytes could not be read as wasm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmError {
    #[error("not a WebAssembly file: it does not start with the `\\0asm` magic bytes")]
    NotWasm,
    #[error(
        "unsupported WebAssembly version {0:02x?}: expected a core module (01 00 00 00) or a component (0d 00 01 00)"
    )]
    UnknownVersion([u8; 4]),
    #[error(
        "truncated WebAssembly file: {0} (the file is {1} bytes; was it cut short while copying?)"
    )]
    Truncated(String, usize),
    #[error(
        "malformed WebAssembly file: the custom section at byte {0} has a name that is not UTF-8"
    )]
    BadSectionName(usize),
}

/// One top-level section.
#[derive(Debug, Clone)]
pub struct Section<'a> {
    pub id: u8,
    /// The whole section, header included.
    pub range: Range<usize>,
    /// The custom section's name, for id 0.
    pub custom_name: Option<&'a str>,
    /// The payload (after the name, for custom sections).
    pub payload: &'a [u8],
}

/// A wasm binary split into its top-level sections.
#[derive(Debug)]
pub struct WasmLayout<'a> {
    pub kind: WasmKind,
    pub sections: Vec<Section<'a>>,
}

impl<'a> WasmLayout<'a> {
    /// Reads the preamble and section framing of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WasmError> {
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(WasmError::NotWasm);
        }
        let version: [u8; 4] = bytes
            .get(4..8)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| WasmError::Truncated("the preamble is cut short".into(), bytes.len()))?;
        let kind = match version {
            MODULE_VERSION => WasmKind::CoreModule,
            COMPONENT_VERSION => WasmKind::Component,
            other => return Err(WasmError::UnknownVersion(other)),
        };
        let mut sections = Vec::new();
        let mut pos = 8;
        while pos < bytes.len() {
            let start = pos;
            let id = bytes[pos];
            pos += 1;
            let (size, n) = read_leb_u32(&bytes[pos..]).ok_or_else(|| {
                WasmError::Truncated(format!("section header at byte {start}"), bytes.len())
            })?;
            pos += n;
            let end = pos.checked_add(size as usize).filter(|e| *e <= bytes.len());
            let Some(end) = end else {
                return Err(WasmError::Truncated(
                    format!("section at byte {start} claims {size} bytes, past the end"),
                    bytes.len(),
                ));
            };
            let body = &bytes[pos..end];
            let (custom_name, payload) = if id == 0 {
                let (len, n) = read_leb_u32(body).ok_or_else(|| {
                    WasmError::Truncated(format!("custom section name at byte {pos}"), bytes.len())
                })?;
                let name = body.get(n..n + len as usize).ok_or_else(|| {
                    WasmError::Truncated(format!("custom section name at byte {pos}"), bytes.len())
                })?;
                let name =
                    std::str::from_utf8(name).map_err(|_| WasmError::BadSectionName(start))?;
                (Some(name), &body[n + len as usize..])
            } else {
                (None, body)
            };
            sections.push(Section {
                id,
                range: start..end,
                custom_name,
                payload,
            });
            pos = end;
        }
        Ok(WasmLayout { kind, sections })
    }

    /// The payload of the first custom section named `name`.
    pub fn custom_section(&self, name: &str) -> Option<&'a [u8]> {
        self.sections
            .iter()
            .find(|s| s.custom_name == Some(name))
            .map(|s| s.payload)
    }
}

/// `bytes` without any top-level custom section named `name`.
pub fn strip_custom_section(bytes: &[u8], name: &str) -> Result<Vec<u8>, WasmError> {
    let layout = WasmLayout::parse(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..8]);
    for s in layout
        .sections
        .iter()
        .filter(|s| s.custom_name != Some(name))
    {
        out.extend_from_slice(&bytes[s.range.clone()]);
    }
    Ok(out)
}

/// Appends a custom section named `name` holding `payload`.
pub fn append_custom_section(bytes: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    write_leb_u32(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    bytes.push(0);
    write_leb_u32(bytes, body.len() as u32);
    bytes.extend_from_slice(&body);
}

fn read_leb_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut result: u32 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        if i == 4 && *b > 0x0f {
            return None; // more than 32 bits
        }
        result |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((result, i + 1));
        }
    }
    None
}

fn write_leb_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        wat::parse_str("(module (func (export \"f\") (result i32) i32.const 42))").unwrap()
    }

    #[test]
    fn leb_round_trips() {
        for v in [0u32, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut buf = Vec::new();
            write_leb_u32(&mut buf, v);
            assert_eq!(read_leb_u32(&buf), Some((v, buf.len())));
        }
    }

    #[test]
    fn append_then_strip_restores_the_original() {
        let original = module();
        let mut signed = original.clone();
        append_custom_section(&mut signed, "wasmcloud_jwt", b"payload");
        let layout = WasmLayout::parse(&signed).unwrap();
        assert_eq!(layout.kind, WasmKind::CoreModule);
        assert_eq!(
            layout.custom_section("wasmcloud_jwt"),
            Some(&b"payload"[..])
        );
        assert_eq!(
            strip_custom_section(&signed, "wasmcloud_jwt").unwrap(),
            original
        );
    }

    #[test]
    fn rejects_non_wasm_truncated_and_unknown_versions() {
        assert_eq!(
            WasmLayout::parse(b"hello world").unwrap_err(),
            WasmError::NotWasm
        );
        assert_eq!(WasmLayout::parse(b"").unwrap_err(), WasmError::NotWasm);
        let m = module();
        for cut in [5, 9, m.len() - 1] {
            let err = WasmLayout::parse(&m[..cut]).unwrap_err();
            assert!(matches!(err, WasmError::Truncated(..)), "cut {cut}: {err}");
        }
        let mut odd = m.clone();
        odd[4] = 2;
        assert!(matches!(
            WasmLayout::parse(&odd),
            Err(WasmError::UnknownVersion(_))
        ));
    }

    #[test]
    fn never_panics_on_arbitrary_prefixes_and_bit_flips() {
        let mut m = module();
        append_custom_section(&mut m, "x", &[1, 2, 3]);
        for i in 0..m.len() {
            let _ = WasmLayout::parse(&m[..i]);
            for bit in 0..8 {
                let mut flipped = m.clone();
                flipped[i] ^= 1 << bit;
                let _ = WasmLayout::parse(&flipped);
            }
        }
    }
}
