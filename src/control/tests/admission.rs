use crate::control::{AdmissionRefused, ConnectionLimits, ConnectionTable};

fn limits(max_pending: usize, max_authenticated: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_pending,
        max_authenticated,
    }
}

/// Admits and tracks connection `id` (nothing has ended); returns the ids evicted for it.
fn connect(
    table: &mut ConnectionTable<u32>,
    id: u32,
) -> (std::sync::Arc<crate::control::Ticket>, Vec<u32>) {
    let admitted = table.admit(|_| false);
    table.track(admitted.ticket.clone(), id);
    (admitted.ticket, admitted.evicted)
}

#[test]
fn a_flood_of_pending_connections_never_evicts_an_authenticated_one() {
    let mut table = ConnectionTable::new(limits(4, 8));
    let (ticket, _) = connect(&mut table, 0);
    let _slot = ticket.authenticate().expect("a free slot");
    let mut evicted = Vec::new();
    for id in 1..=200 {
        evicted.extend(connect(&mut table, id).1);
    }
    assert!(
        !evicted.contains(&0),
        "the authenticated connection was evicted"
    );
    assert_eq!(
        evicted.len(),
        200 - 4,
        "all but the newest four pending gave way"
    );
    assert_eq!(table.pending(), 4);
    assert_eq!(table.authenticated(), 1);
}

#[test]
fn at_the_pending_cap_the_oldest_pending_connection_gives_way() {
    let mut table = ConnectionTable::new(limits(3, 8));
    let tickets: Vec<_> = (0..3).map(|id| connect(&mut table, id).0).collect();
    let (_, evicted) = connect(&mut table, 3);
    assert_eq!(evicted, [0]);
    assert_eq!(
        tickets[0].authenticate().unwrap_err(),
        AdmissionRefused::Evicted,
        "a token arriving after the eviction is too late"
    );
    assert_eq!(table.authenticated(), 0, "a refused ticket holds no slot");
    // The second oldest authenticates: the next eviction skips it and takes the third.
    let _slot = tickets[1].authenticate().unwrap();
    let (_, evicted) = connect(&mut table, 4);
    assert_eq!(
        evicted,
        Vec::<u32>::new(),
        "room was made by the authentication"
    );
    let (_, evicted) = connect(&mut table, 5);
    assert_eq!(evicted, [2]);
}

#[test]
fn ended_connections_free_their_pending_slot() {
    let mut table = ConnectionTable::new(limits(2, 8));
    connect(&mut table, 0);
    connect(&mut table, 1);
    let admitted = table.admit(|id| *id == 0);
    assert!(admitted.evicted.is_empty(), "{:?}", admitted.evicted);
}

#[test]
fn authenticated_connections_are_capped_and_a_closed_one_frees_its_slot() {
    let mut table = ConnectionTable::new(limits(8, 2));
    let tickets: Vec<_> = (0..3).map(|id| connect(&mut table, id).0).collect();
    let first = tickets[0].authenticate().unwrap();
    let _second = tickets[1].authenticate().unwrap();
    let refused = tickets[2].authenticate().unwrap_err();
    assert_eq!(refused, AdmissionRefused::Full { limit: 2 });
    assert!(refused.to_string().contains("too many control connections"));
    assert_eq!(table.authenticated(), 2);
    drop(first);
    assert_eq!(table.authenticated(), 1);
    let (late, _) = connect(&mut table, 3);
    let _third = late.authenticate().expect("the freed slot");
}
