//! Stand-ins for what only a run knows: the answer to a request and what is taken from it.
//!
//! The plan check evaluates every template before anything is sent, so the answer a step
//! will get (`response`) is an [`Unknown`]: any attribute of it is another `Unknown`, it is
//! true, it iterates as empty. Touching one is noted, so the check knows which results depend
//! on an answer (and so say nothing about the scenario when they fail, or are false).

use std::cell::Cell;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, State};

use crate::template::map_value;

thread_local! {
    /// Whether an [`Unknown`] was used since the last [`Watch::start`].
    static TOUCHED: Cell<bool> = const { Cell::new(false) };
}

fn touch() {
    TOUCHED.with(|t| t.set(true));
}

/// Notes whether an evaluation used a stand-in.
pub struct Watch;

impl Watch {
    /// Starts watching (forgets earlier uses).
    pub fn start() -> Self {
        TOUCHED.with(|t| t.set(false));
        Watch
    }

    /// Whether a stand-in was used since the start.
    pub fn touched(&self) -> bool {
        TOUCHED.with(Cell::get)
    }
}

/// A value not known before the run: part of an answer, or computed from one.
#[derive(Debug)]
pub struct Unknown;

impl Object for Unknown {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        touch();
        Some(unknown())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        touch();
        Enumerator::Empty
    }

    fn is_true(self: &Arc<Self>) -> bool {
        touch();
        true
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, _args: &[Value]) -> Result<Value, Error> {
        touch();
        Ok(unknown())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        _method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        touch();
        Ok(unknown())
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    where
        Self: Sized + 'static,
    {
        touch();
        f.write_str("unknown")
    }
}

/// A new stand-in.
pub fn unknown() -> Value {
    Value::from_object(Unknown)
}

/// Whether `v` is a stand-in.
pub fn is_unknown(v: &Value) -> bool {
    v.downcast_object_ref::<Unknown>().is_some()
}

/// The answer of a step before it comes: the fields the runner gives `response`, each unknown,
/// so a misspelt field (`response.stauts`) is still found.
pub fn response() -> Value {
    map_value(crate::run::RESPONSE_FIELDS.iter().map(|f| (*f, unknown())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Pos;
    use crate::template::Expr;

    #[test]
    fn unknowns_absorb_everything_and_are_noted() {
        let ctx = map_value([("r", response())]);
        let w = Watch::start();
        assert!(!w.touched());
        let e = Expr::new(
            "r.json.tags | length == 0 and r.headers['x'].y",
            &Pos::default(),
        )
        .unwrap();
        e.eval(&ctx).unwrap();
        assert!(w.touched());
        let w = Watch::start();
        Expr::new("1 + 1", &Pos::default())
            .unwrap()
            .eval(&ctx)
            .unwrap();
        assert!(!w.touched());
    }
}
