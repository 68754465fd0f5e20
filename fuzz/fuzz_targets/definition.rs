//! Whole-definition fuzzing: JSON and YAML readers, loader, checker and the
//! graph renderers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piflow_asl::render::{GraphFormat, render};
use piflow_asl::{Format, LoadOptions, validate_text};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Json, Format::Yaml] {
        let v = validate_text("f", s, format, LoadOptions::default());
        let _ = v.is_valid();
        if let Some(machine) = &v.machine {
            let _ = render(machine, GraphFormat::Mermaid);
            let _ = render(machine, GraphFormat::Dot);
        }
    }
});
