use crate::chirpstack::client::MAX_LISTED_ITEMS;
use crate::chirpstack::poll::paginate;

#[tokio::test]
async fn pagination_collects_every_page_and_stops_on_short_pages() {
    let all: Vec<u32> = (0..250).collect();
    let calls = std::sync::atomic::AtomicU32::new(0);
    let got = paginate(100, |limit, offset| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let page: Vec<u32> = all
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .copied()
            .collect();
        async move { Ok((250, page)) }
    })
    .await
    .unwrap();
    assert_eq!(got, all);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 3);

    // A server that lies about its total cannot make the loop run forever.
    let got = paginate(10, |_, _| async { Ok((u32::MAX, vec![1u8; 10])) })
        .await
        .unwrap();
    assert_eq!(got.len(), MAX_LISTED_ITEMS);
}
