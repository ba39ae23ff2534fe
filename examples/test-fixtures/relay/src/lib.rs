//! Test fixture: the caller of calls across the lattice. Each export forwards to the
//! imported `trellis:test/greet`, which the host routes through the component's link.

mod bindings {
    wit_bindgen::generate!({
        world: "relay-world",
        path: ["../wit"],
    });
}

use bindings::exports::trellis::test::relay::{Greeting, Guest, Reply};
use bindings::trellis::test::greet;

struct Relay;

impl Guest for Relay {
    fn relay(name: String) -> String {
        greet::greet(&name)
    }

    fn relay_describe(g: Greeting, n: i64) -> Result<Reply, String> {
        greet::describe(&g, n)
    }

    fn relay_nap(ms: u32) -> String {
        greet::nap(ms)
    }
}

bindings::export!(Relay with_types_in bindings);
