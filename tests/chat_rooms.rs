//! The `chat` example end to end: rooms by path, nicknames, JSON messages,
//! join and leave notices, and the guest's own idle ping. The checks live
//! in `support::twins::chat`, which the chat example's twins in other
//! languages pass too.

mod support;

use support::{Host, twins::chat};

#[tokio::test]
async fn two_members_chat_in_a_room_and_see_each_other_come_and_go() {
    chat::members_chat_and_come_and_go(&Host::start("chat", &[])).await;
}

#[tokio::test]
async fn a_nickname_is_required() {
    chat::a_nickname_and_a_room_are_required(&Host::start("chat", &[])).await;
}

#[tokio::test]
async fn a_silent_member_gets_pinged_by_the_guests_timer() {
    chat::a_silent_member_is_pinged(&Host::start("chat", &[])).await;
}

#[tokio::test]
async fn nonsense_gets_an_error_not_a_disconnect() {
    chat::nonsense_gets_an_error_not_a_disconnect(&Host::start("chat", &[])).await;
}
