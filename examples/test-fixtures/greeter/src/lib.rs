//! Test fixture: the target of calls across the lattice (`trellis:test/greet`).

mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package trellis:fixtures;

            world greeter {
                import wasi:config/store@0.2.0-draft;
                export trellis:test/greet@0.1.0;
            }
        "#,
        path: ["../wit", "../../../interfaces/wasi-config"],
        generate_all,
    });
}

use bindings::exports::trellis::test::greet::{Greeting, Guest, Reply};
use bindings::wasi::config::store;

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        let site = store::get("site").ok().flatten();
        format!("hello {name} from {}", site.as_deref().unwrap_or("unknown"))
    }

    fn describe(g: Greeting, n: i64) -> Result<Reply, String> {
        match n {
            -1 => Ok(Reply::Nothing),
            n if n < -1 => Err(format!("negative count {n}")),
            n => Ok(Reply::Detailed(Greeting {
                count: u32::try_from(n).ok(),
                ..g
            })),
        }
    }

    fn nap(ms: u32) -> String {
        let pollable = wasi::clocks::monotonic_clock::subscribe_duration(u64::from(ms) * 1_000_000);
        pollable.block();
        format!("slept {ms}")
    }
}

bindings::export!(Greeter with_types_in bindings);
