//! The schedule of a run: which nodes wait for which, and how many cases run at once.
//!
//! Concurrency comes from the plan: a `parallel` group makes its items the lanes of a batch
//! ([`crate::plan::Lane`]). The schedule adds the two rules that keep a parallel run's results
//! equal to a sequential run's:
//!
//! - **keys**: a node holding key K exclusively starts only after every node before it in plan
//!   order that holds K has finished (its own ancestors excepted: a group holding K lets its
//!   subtree use K in turn); a node holding K shared (it only reads the resource) waits only
//!   for the earlier exclusive holders, so readers run together. Users of a resource take
//!   turns in plan order whatever the timing, so each sees what a sequential run shows it.
//! - **case slots**: at most N cases send requests at once. A case takes a slot only after
//!   everything it waits for has finished, and groups hold none. Which waiting case goes first
//!   changes no result, only the time: the one with the longest estimated chain of requests
//!   still behind it (its own, what follows it in its sequence, and the holders of its keys
//!   that wait for it) goes first, so that chains through shared content start early; ties
//!   go in plan order.
//!
//! A third rule is for registries that cannot do two things at once (docker-registry answers
//! 500 to a manifest DELETE while a tag is being written): **apart keys** keep nodes of
//! different classes of a key from overlapping in time, in whichever order they come (the
//! pack asserts the order does not matter); a case takes them after its slot, all at once, and
//! does not overtake an earlier case it conflicts with.
//!
//! This cannot deadlock: a node waits only for nodes whose subtrees lie entirely before it in
//! plan order, and for earlier siblings of a sequence, so the earliest unfinished case has
//! nothing left to wait for but a slot, and slots are only held by cases that are running.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::plan::{PlanKind, PlanNode};
use crate::scenario::StepSpec;

/// Waits between nodes and the case slots of one run.
pub struct Schedule {
    /// For each node (by plan order), the earlier nodes it waits for.
    preds: Vec<Vec<usize>>,
    /// For each node, the estimated requests from its start to the end of the run.
    tails: Vec<u64>,
    /// Which nodes have finished (by plan order).
    done: Mutex<Vec<bool>>,
    /// Per node: signalled when it finishes (only its waiters wake up).
    finished: Vec<Condvar>,
    slots: Mutex<Slots>,
    /// Per case: signalled when it is the next to get a slot.
    turn: Vec<Condvar>,
    apart: Mutex<Apart>,
    /// Signalled when apart keys are released.
    apart_freed: Condvar,
}

/// Apart keys held and wanted.
#[derive(Default)]
struct Apart {
    /// Per key: its holders' class and how many there are.
    held: HashMap<String, (String, usize)>,
    /// Cases waiting for apart keys, in arrival order: (ticket, keys).
    waiting: Vec<(u64, Vec<(String, String)>)>,
    next_ticket: u64,
}

impl Apart {
    /// Whether `want` may be taken now: every key free or held in the same class, and no
    /// earlier waiter it conflicts with (so a steady stream of one class does not starve
    /// another).
    fn allows(&self, ticket: u64, want: &[(String, String)]) -> bool {
        let together = |a: &str, b: &str| a == b && a != ALONE;
        let free = want.iter().all(|(key, class)| match self.held.get(key) {
            Some((held, n)) if *n > 0 => together(class, held),
            _ => true,
        });
        free && !self.waiting.iter().any(|(t, theirs)| {
            *t < ticket
                && theirs.iter().any(|(k, c)| {
                    want.iter()
                        .any(|(key, class)| key == k && !together(class, c))
                })
        })
    }
}

/// The apart class that runs with no other holder of its key, of whatever class.
pub const ALONE: &str = "alone";

/// Apart keys held by a running case, released when dropped.
pub struct Held<'a> {
    schedule: &'a Schedule,
    keys: &'a [(String, String)],
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut a = lock(&self.schedule.apart);
        for (key, _) in self.keys {
            if let Some((_, n)) = a.held.get_mut(key) {
                *n -= 1;
            }
        }
        drop(a);
        self.schedule.apart_freed.notify_all();
    }
}

struct Slots {
    free: usize,
    /// Cases ready to run, most urgent first: (longest chain behind, reversed; plan order).
    waiting: BTreeSet<(std::cmp::Reverse<u64>, usize)>,
}

/// Marks a node finished when dropped.
pub struct Finishing<'a> {
    schedule: &'a Schedule,
    order: usize,
    last: usize,
}

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        self.schedule.finish_range(self.order, self.last);
    }
}

/// A case slot, given back when dropped.
pub struct Slot<'a>(&'a Schedule);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.0.slots);
        s.free += 1;
        self.0.wake_next(&s);
    }
}

impl Schedule {
    /// The schedule of a plan run with `slots` cases at once (at least one).
    pub fn new(root: &PlanNode<'_>, slots: usize) -> Self {
        let mut preds = vec![Vec::new(); root.last + 1];
        // Per key, the holders so far: (order, last, exclusive).
        let mut holders: HashMap<&str, Vec<(usize, usize, bool)>> = HashMap::new();
        root.walk(&mut |n, _| {
            let mut mine: Vec<(usize, usize)> = Vec::new();
            let keys = n.exclusive.iter().map(|k| (k, true));
            for (key, exclusive) in keys.chain(n.shared.iter().map(|k| (k, false))) {
                let list = holders.entry(key.as_str()).or_default();
                // Earlier holders that are not ancestors (their subtrees end before this node);
                // two readers do not wait for each other.
                mine.extend(
                    list.iter()
                        .filter(|(order, last, excl)| {
                            (exclusive || *excl) && !(*order < n.order && n.order <= *last)
                        })
                        .map(|(order, last, _)| (*order, *last)),
                );
                list.push((n.order, n.last, exclusive));
            }
            mine.sort_unstable();
            mine.dedup();
            // A holder inside another holder's subtree is covered by it.
            let mut kept: Vec<(usize, usize)> = Vec::new();
            for (order, last) in mine {
                if !kept.iter().any(|(o, l)| *o <= order && last <= *l) {
                    kept.push((order, last));
                }
            }
            preds[n.order] = kept.into_iter().map(|(o, _)| o).collect();
        });
        let mut successors = vec![Vec::new(); root.last + 1];
        for (node, ps) in preds.iter().enumerate() {
            for p in ps {
                successors[*p].push(node);
            }
        }
        let mut tails = vec![0; root.last + 1];
        tail(root, 0, &successors, &mut tails);
        Schedule {
            preds,
            tails,
            done: Mutex::new(vec![false; root.last + 1]),
            finished: (0..=root.last).map(|_| Condvar::new()).collect(),
            slots: Mutex::new(Slots {
                free: slots.max(1),
                waiting: BTreeSet::new(),
            }),
            turn: (0..=root.last).map(|_| Condvar::new()).collect(),
            apart: Mutex::new(Apart::default()),
            apart_freed: Condvar::new(),
        }
    }

    /// The nodes `node` waits for (by plan order), for `list` and tests.
    pub fn waits_for(&self, node: &PlanNode<'_>) -> &[usize] {
        self.preds.get(node.order).map_or(&[], Vec::as_slice)
    }

    /// Blocks until every earlier holder of the node's keys has finished.
    pub fn wait(&self, node: &PlanNode<'_>) {
        let preds = self.waits_for(node);
        if preds.is_empty() {
            return;
        }
        let mut done = lock(&self.done);
        for p in preds {
            while !done[*p] {
                done = self.finished[*p]
                    .wait(done)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    /// Marks the node finished when the returned guard is dropped (also on a panic).
    pub fn finishing<'s>(&'s self, node: &PlanNode<'_>) -> Finishing<'s> {
        Finishing {
            schedule: self,
            order: node.order,
            last: node.last,
        }
    }

    /// Marks a node and its whole subtree finished (omitted parts included).
    pub fn finish(&self, node: &PlanNode<'_>) {
        self.finish_range(node.order, node.last);
    }

    fn finish_range(&self, order: usize, last: usize) {
        let mut done = lock(&self.done);
        for (d, cv) in done[order..=last]
            .iter_mut()
            .zip(&self.finished[order..=last])
        {
            if !*d {
                *d = true;
                cv.notify_all();
            }
        }
    }

    /// The estimated requests from the start of `node` to the end of the run.
    pub fn tail(&self, node: &PlanNode<'_>) -> u64 {
        self.tails.get(node.order).copied().unwrap_or_default()
    }

    /// Takes a case slot; the most urgent waiting case is served first.
    pub fn slot(&self, node: &PlanNode<'_>) -> Slot<'_> {
        let me = (std::cmp::Reverse(self.tail(node)), node.order);
        let mut s = lock(&self.slots);
        s.waiting.insert(me);
        while !(s.free > 0 && s.waiting.first() == Some(&me)) {
            s = self.turn[node.order]
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        s.waiting.remove(&me);
        s.free -= 1;
        // Another slot may still be free: the next in line takes it.
        self.wake_next(&s);
        Slot(self)
    }

    /// Takes the case's apart keys (all at once, when no holder or earlier waiter of another
    /// class is in the way); call it holding the case's slot.
    pub fn apart<'s>(&'s self, node: &'s PlanNode<'_>) -> Held<'s> {
        let keys = node.apart.as_slice();
        if keys.is_empty() {
            return Held {
                schedule: self,
                keys,
            };
        }
        let mut a = lock(&self.apart);
        let ticket = a.next_ticket;
        a.next_ticket += 1;
        a.waiting.push((ticket, keys.to_vec()));
        while !a.allows(ticket, keys) {
            a = self
                .apart_freed
                .wait(a)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        a.waiting.retain(|(t, _)| *t != ticket);
        for (key, class) in keys {
            let entry = a.held.entry(key.clone()).or_insert((class.clone(), 0));
            if entry.1 == 0 {
                entry.0 = class.clone();
            }
            entry.1 += 1;
        }
        drop(a);
        // Leaving the queue may let a later waiter of the same class in.
        self.apart_freed.notify_all();
        Held {
            schedule: self,
            keys,
        }
    }

    /// Wakes the first waiting case, if a slot is free for it.
    fn wake_next(&self, s: &Slots) {
        if s.free > 0 {
            if let Some((_, order)) = s.waiting.first() {
                self.turn[*order].notify_one();
            }
        }
    }
}

/// Estimates, for `node` and everything below it, the requests from its start to the end of
/// the run when nothing else holds it up (`after`: what follows it in its sequence), and
/// returns the node's. Nodes are visited from the end of the plan backwards, so what a node
/// leads to (later siblings, later lanes, the later holders of its keys) is known.
fn tail(node: &PlanNode<'_>, after: u64, successors: &[Vec<usize>], tails: &mut [u64]) -> u64 {
    let after = successors[node.order]
        .iter()
        .map(|s| tails[*s])
        .fold(after, u64::max);
    let t = match &node.kind {
        PlanKind::Case(case) => (requests(&case.steps) + requests(&case.cleanup)).max(1) + after,
        PlanKind::Group { children, .. } => sequence_tail(children, 0, after, successors, tails),
    };
    tails[node.order] = t;
    t
}

/// [`tail`] of a sequence of siblings (a batch counts as its longest lane).
fn sequence_tail(
    nodes: &[PlanNode<'_>],
    level: usize,
    after: u64,
    successors: &[Vec<usize>],
    tails: &mut [u64],
) -> u64 {
    let mut next = after;
    let mut end = nodes.len();
    while end > 0 {
        let last = &nodes[end - 1];
        let Some(lane) = last.lanes.get(level) else {
            next = tail(last, next, successors, tails);
            end -= 1;
            continue;
        };
        let start = end
            - nodes[..end]
                .iter()
                .rev()
                .take_while(|n| n.lanes.get(level).map(|l| l.batch) == Some(lane.batch))
                .count();
        // The lanes from the last: a later lane may hold a key an earlier one waits for.
        let mut longest = next;
        let mut lane_end = end;
        while lane_end > start {
            let id = nodes[lane_end - 1].lanes[level].lane;
            let lane_start = lane_end
                - nodes[start..lane_end]
                    .iter()
                    .rev()
                    .take_while(|n| n.lanes[level].lane == id)
                    .count();
            let t = sequence_tail(
                &nodes[lane_start..lane_end],
                level + 1,
                next,
                successors,
                tails,
            );
            longest = longest.max(t);
            lane_end = lane_start;
        }
        next = longest;
        end = start;
    }
    next
}

/// Requests a list of steps sends (a loop counts once, alternatives count).
fn requests(steps: &[StepSpec]) -> u64 {
    steps
        .iter()
        .map(|s| {
            u64::from(s.request.is_some())
                + requests(&s.steps)
                + s.unsupported.iter().map(|u| requests(&u.then)).sum::<u64>()
        })
        .sum()
}

/// Locks a mutex, going on after a panic elsewhere (the data stay consistent: flags only).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pack::{self, Pack};
    use crate::plan::{self, Plan};

    /// Loads a pack made of `pack.yaml` text (in a fresh temp folder).
    pub(crate) fn pack_of(name: &str, yaml: &str) -> Pack {
        let dir = std::env::temp_dir().join(format!(
            "oci-conform-schedule-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pack.yaml"), yaml).unwrap();
        let p = pack::load(&dir).unwrap_or_else(|d| panic!("{}", d.render()));
        let _ = std::fs::remove_dir_all(&dir);
        p
    }

    /// Plans a pack with the default configuration.
    pub(crate) fn plan_of(pack: &Pack) -> Plan<'_> {
        let sources = crate::config::Sources::default();
        let cfg = crate::config::resolve(&sources, &pack.defaults, &pack.spec_version).unwrap();
        plan::build(pack, &cfg, &[], 1).unwrap_or_else(|d| panic!("{}", d.render()))
    }

    const PACK: &str = r#"
name: T
specVersion: "9"
items:
  - {name: a, exclusive: [k], steps: [{set: {x: 1}}]}
  - parallel: true
    items:
      - {name: b, shared: [k], steps: [{set: {x: 1}}]}
      - for_each: {i: "[1, 2]"}
        items:
          - {name: "c{{ i }}", shared: [k], steps: [{set: {x: 1}}]}
          - {name: "d{{ i }}", exclusive: ["{{ ['k', 'k' ~ i, ''] }}"], steps: [{set: {x: 1}}]}
  - name: g
    exclusive: [k]
    items:
      - {name: h, exclusive: [k], steps: [{set: {x: 1}}]}
"#;

    fn by_id<'a>(plan: &'a Plan<'_>) -> std::collections::HashMap<String, &'a PlanNode<'a>> {
        let mut m = std::collections::HashMap::new();
        plan.root.walk(&mut |n, _| {
            m.insert(n.id.clone(), n);
        });
        m
    }

    #[test]
    fn parallel_groups_make_one_lane_per_item() {
        let pack = pack_of("lanes", PACK);
        let plan = plan_of(&pack);
        let n = by_id(&plan);
        assert!(n["a"].lanes.is_empty() && n["g"].lanes.is_empty() && n["g/h"].lanes.is_empty());
        let lane = |id: &str| n[id].lanes[0];
        assert_eq!(n["b"].lanes.len(), 1);
        assert_eq!(lane("b").batch, lane("c1").batch);
        assert_eq!(lane("b").batch, lane("d2").batch);
        // one for_each copy, spliced from a group without a name, is one lane
        assert_eq!(lane("c1"), lane("d1"));
        assert_eq!(lane("c2"), lane("d2"));
        assert_ne!(lane("b").lane, lane("c1").lane);
        assert_ne!(lane("c1").lane, lane("c2").lane);
        // a key template may render a list; empty keys are dropped
        assert_eq!(n["d1"].exclusive, vec!["k", "k1"]);
    }

    #[test]
    fn holders_wait_for_earlier_holders_in_plan_order() {
        let pack = pack_of("waits", PACK);
        let plan = plan_of(&pack);
        let n = by_id(&plan);
        let s = Schedule::new(&plan.root, 4);
        let waits = |id: &str| -> Vec<&str> {
            let mut ids: Vec<&str> = s
                .waits_for(n[id])
                .iter()
                .map(|o| {
                    n.values()
                        .find(|x| x.order == *o)
                        .map(|x| x.id.as_str())
                        .unwrap()
                })
                .collect();
            ids.sort_unstable();
            ids
        };
        assert!(waits("a").is_empty());
        // readers wait for writers, not for each other
        assert_eq!(waits("b"), ["a"]);
        assert_eq!(waits("c1"), ["a"]);
        assert_eq!(waits("c2"), ["a", "d1"]);
        // writers wait for everyone before them
        assert_eq!(waits("d1"), ["a", "b", "c1"]);
        assert_eq!(waits("g"), ["a", "b", "c1", "c2", "d1", "d2"]);
        // but not for the group they are in
        assert_eq!(waits("g/h"), ["a", "b", "c1", "c2", "d1", "d2"]);
    }

    #[test]
    fn finished_subtrees_release_their_waiters() {
        let pack = pack_of("finish", PACK);
        let plan = plan_of(&pack);
        let n = by_id(&plan);
        let s = Arc::new(Schedule::new(&plan.root, 4));
        // everything before g finishes on other threads; g may then start
        std::thread::scope(|scope| {
            for id in ["a", "b", "c1", "d1", "c2", "d2"] {
                let (s, node) = (&s, n[id]);
                scope.spawn(move || s.finish(node));
            }
            s.wait(n["g"]);
        });
        assert!(lock(&s.done)[..n["g"].order].iter().skip(1).all(|d| *d));
    }

    #[test]
    fn chains_behind_a_case_make_it_urgent() {
        let pack = pack_of("tails", PACK);
        let plan = plan_of(&pack);
        let n = by_id(&plan);
        let s = Schedule::new(&plan.root, 4);
        let t = |id: &str| s.tail(n[id]);
        // g/h is last: its own step; g is h's; d2 leads to g (a key), c2 to d2 (its lane)
        assert_eq!(t("g/h"), 1);
        assert_eq!(t("g"), 1);
        assert_eq!(t("d2"), 2);
        assert_eq!(t("c2"), 3);
        // d1 leads to c2 and d2 (they wait for its key); c1 to d1 (its lane)
        assert_eq!(t("d1"), 4);
        assert_eq!(t("c1"), 5);
        // b only leads to the end of the batch, and to d1 (which waits for its key)
        assert_eq!(t("b"), 5);
        // everything waits for a
        assert_eq!(t("a"), 6);
    }

    #[test]
    fn apart_classes_never_overlap_and_keep_their_turn() {
        let pack = pack_of(
            "apart",
            r#"
name: T
specVersion: "9"
items:
  - {name: w1, apart: {k: write}, steps: [{set: {x: 1}}]}
  - {name: w2, apart: {k: write}, steps: [{set: {x: 1}}]}
  - {name: d1, apart: {k: delete}, steps: [{set: {x: 1}}]}
  - {name: a1, apart: {k: alone}, steps: [{set: {x: 1}}]}
  - {name: none, apart: {k: "{{ 'write' if false }}"}, steps: [{set: {x: 1}}]}
  - name: g
    apart: {k: delete}
    items: [{name: in, steps: [{set: {x: 1}}]}]
"#,
        );
        let plan = plan_of(&pack);
        let n = by_id(&plan);
        assert!(n["none"].apart.is_empty(), "an empty class holds nothing");
        assert_eq!(
            n["g/in"].apart,
            [("k".into(), "delete".into())],
            "cases below a group"
        );
        let s = Schedule::new(&plan.root, 8);
        let waiting = || lock(&s.apart).waiting.len();
        let w1 = s.apart(n["w1"]);
        let w2 = s.apart(n["w2"]); // same class: together
        std::thread::scope(|scope| {
            let delete = scope.spawn(|| {
                let _d = s.apart(n["d1"]);
                assert_eq!(lock(&s.apart).held["k"], ("delete".to_string(), 1));
            });
            while waiting() < 1 {
                std::thread::yield_now();
            }
            // a later writer does not overtake the waiting delete
            let late = scope.spawn(|| drop(s.apart(n["w2"])));
            while waiting() < 2 {
                std::thread::yield_now();
            }
            assert!(!delete.is_finished() && !late.is_finished());
            drop(w1);
            assert!(!delete.is_finished(), "w2 still holds the key");
            drop(w2);
            delete.join().unwrap();
            late.join().unwrap();
        });
        // alone: not even with its own class
        let a = s.apart(n["a1"]);
        let mut a_state = lock(&s.apart);
        assert!(!a_state.allows(u64::MAX, &n["a1"].apart));
        assert!(!a_state.allows(u64::MAX, &n["w1"].apart));
        a_state.waiting.clear();
        drop(a_state);
        drop(a);
        assert!(lock(&s.apart).allows(u64::MAX, &n["a1"].apart));
    }

    #[test]
    fn slots_bound_concurrency_and_go_to_the_most_urgent() {
        let pack = pack_of("slots", PACK);
        let plan = plan_of(&pack);
        let n = by_id(&plan);
        let s = Schedule::new(&plan.root, 1);
        let got = Mutex::new(Vec::new());
        let first = s.slot(n["a"]);
        std::thread::scope(|scope| {
            for id in ["d2", "b", "c1"] {
                let (s, got, node) = (&s, &got, n[id]);
                scope.spawn(move || {
                    let _slot = s.slot(node);
                    lock(got).push(node.id.clone());
                });
            }
            // once all three wait, the longest chain goes first, then plan order
            while lock(&s.slots).waiting.len() < 3 {
                std::thread::yield_now();
            }
            assert!(lock(&got).is_empty(), "one slot, taken");
            drop(first);
        });
        assert_eq!(
            *lock(&got),
            ["b", "c1", "d2"],
            "b and c1 tie at 5, d2 has 2"
        );
    }
}
