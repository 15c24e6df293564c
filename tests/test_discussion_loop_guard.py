"""The loop guard by progress: a hand-over chain that repeats itself, or whose agents only agree
back and forth, stops early and says why; "Continue" goes on; a chain that says new things runs
to the count budget as before."""

from __future__ import annotations

import itertools

import pytest

from discux.discussion.engine import MAX_HANDOVERS
from discux.discussion.progress import (
    REPEAT_THRESHOLD,
    agrees_back_and_forth,
    is_bare_agreement,
    similarity,
    stall_of,
)
from tests.conftest import LiveServer
from tests.support import factories, ws_client
from tests.support.fake_llm import FakeReply
from tests.test_discussion_engine import Room


def scripted(lines: dict[str, list[str]]):
    """A responder answering as the agent the system prompt names, with that agent's next line
    (its last line once the script runs out)."""
    turns = {name: itertools.count() for name in lines}

    def respond(body):
        system = body["messages"][0]["content"]
        for name, said in lines.items():
            if system.startswith(f"You are {name},"):
                return FakeReply(text=said[min(next(turns[name]), len(said) - 1)])
        return None

    return respond


@pytest.fixture
def room_socket(llm_app):
    """`room_socket(room, fmt)` → a socket on a live server of the LLM app, as the room's owner."""
    server = LiveServer(llm_app).start()
    sockets = []

    def _open(room, fmt="json"):
        with llm_app.app_context():
            token = factories.create_session_token(room.owner_id)
        ws = ws_client.connect(server.url, room.id, token, fmt=fmt)
        sockets.append(ws)
        return ws

    yield _open
    for ws in sockets:
        ws.close()
    server.stop()


def status_line_after_the_agents(room, ws) -> dict:
    """The room's status line once its agents are done: the last agent.status a socket gets
    before a message posted after them."""
    room.wait()
    room.post("(marker)", humans_only=True)
    last = None
    while True:
        event = ws_client.next_event(ws, timeout=15)
        if event["type"] == "agent.status":
            last = event["data"]
        elif event["type"] == "message.created" and event["data"].get("content") == "(marker)":
            return last


REPEATING = {
    "Nova": ["We should ship on Friday, @Scout what do you think?"],
    "Scout": ["Friday is risky because QA needs two more days, back to @Nova.",
              "Friday is risky since QA needs two more days. Back to you, @Nova."],
}


def test_a_chain_that_repeats_itself_stops_and_says_why(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.respond_with(scripted(REPEATING))
    room.post("@Nova when do we ship?")
    status = status_line_after_the_agents(room, ws)
    # Nova's second reply is her first again: her hand-over to Scout is refused.
    assert [name for name, _ in room.replies()] == ["Nova", "Scout", "Nova"]
    assert status["state"] == "no_progress" and status["reason"] == "repeating"
    assert status["why"] == "Nova repeated what was already said"
    assert status["waiting"] == "Scout"


def test_agents_that_only_agree_back_and_forth_are_stopped(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.respond_with(scripted({
        "Nova": ["Let's price the pro plan at 20 euros a month, @Scout.",
                 "Yes, exactly, @Scout!"],
        "Scout": ["Agreed, @Nova.", "Totally agree, @Nova, great point."],
    }))
    room.post("@Nova what should pro cost?")
    status = status_line_after_the_agents(room, ws)
    assert [text for _, text in room.replies()] == [
        "Let's price the pro plan at 20 euros a month, @Scout.", "Agreed, @Nova.",
        "Yes, exactly, @Scout!"]
    assert status["state"] == "no_progress" and status["reason"] == "agreeing"
    assert status["why"] == "Nova and Scout only agreed with each other"


def test_a_chain_that_says_new_things_runs_to_the_count_budget(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.respond_with(scripted({
        "Nova": ["Agreed, @Scout, and the launch email should go out Thursday at 9.",
                 "Good point. I'd add a changelog page before the email, @Scout.",
                 "Yes, and support needs the FAQ by Wednesday. @Scout?"],
        "Scout": ["Agreed, @Nova.", "Right, the changelog can reuse the release notes, @Nova.",
                  "Fine by me: I will draft the FAQ tonight, @Nova."],
    }))
    room.post("@Nova plan the launch")
    status = status_line_after_the_agents(room, ws)
    assert len(room.replies()) == 1 + MAX_HANDOVERS  # the count guard, not the progress one
    assert status["state"] == "budget_spent"


def test_continue_resumes_a_chain_the_guard_stopped(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.respond_with(scripted(REPEATING))
    room.post("@Nova when do we ship?")
    assert status_line_after_the_agents(room, ws)["state"] == "no_progress"
    # Scout, left waiting, answers: a new stretch, which the guard judges on its own (Scout
    # may say again what it said before Continue), up to Continue's count budget.
    fake.respond_with(scripted({
        "Nova": ["Then Monday: @Scout can QA confirm?"],
        "Scout": [REPEATING["Scout"][0], "QA can finish by Monday, @Nova."],
    }))
    assert room.control("continue").status_code == 303
    status = status_line_after_the_agents(room, ws)
    assert [name for name, _ in room.replies()][3:] == ["Scout", "Nova", "Scout"]
    assert room.replies()[-1] == ("Scout", "QA can finish by Monday, @Nova.")
    assert status["state"] == "budget_spent" and status["waiting"] == "Nova"


def test_the_reason_reaches_the_page_fragment_with_its_continue_button(llm_app, fake,
                                                                        room_socket):
    room = Room(llm_app)
    ws = room_socket(room, fmt="html")
    fake.respond_with(scripted(REPEATING))
    room.post("@Nova when do we ship?")
    frame = ws_client.wait_for_text(ws, "Stopped:", timeout=15)
    assert "Stopped: Nova repeated what was already said; Scout was asked to answer next." in frame
    assert f'hx-post="/rooms/{room.id}/continue"' in frame and "Continue (3 more)" in frame


# ---- the rule itself ----
@pytest.mark.parametrize(("a", "b", "expected"), [
    ("Ship it on Friday.", "Ship it on Friday.", 1.0),
    ("Ship it on Friday, @Scout.", "ship it on friday @Nova", 1.0),  # mentions, case, punctuation
    ("We ship on Friday", "QA needs Monday", 0.0),
    ("one two three four", "one two three five", 0.75),  # 2 × 3 matched / 8 words
    ("", "anything", 0.0),
])
def test_similarity_is_the_share_of_matching_words(a, b, expected):
    assert similarity(a, b) == pytest.approx(expected)


def test_a_reworded_repeat_is_above_the_threshold_and_a_new_point_below():
    first = "Friday is risky because QA needs two more days, back to @Nova."
    assert similarity(first, "Friday is risky because QA needs two more days. Back to you, "
                             "@Nova.") >= REPEAT_THRESHOLD
    assert similarity(first, "Friday works if QA starts two days early, @Nova.") < REPEAT_THRESHOLD


@pytest.mark.parametrize(("reply", "bare"), [
    ("Agreed.", True),
    ("Totally agree, @Nova, great point.", True),
    ("+1", True),
    ("Agreed, but what about the budget?", False),  # a question asks for something new
    ("Agreed, and the launch email should go out Thursday at 9.", False),
    ("It's 42.", False),  # short, but no agreement in it
])
def test_a_bare_agreement_is_short_and_adds_no_new_words(reply, bare):
    assert is_bare_agreement(reply) is bare


def test_restating_what_was_said_is_no_new_content():
    said = ["The pro plan should cost 20 euros."]
    assert is_bare_agreement("Yes, 20 euros for the pro plan.", said)
    assert not is_bare_agreement("Yes, 20 euros for the pro plan.")


def test_one_agreement_is_a_normal_hand_over_two_in_a_row_stop():
    assert not agrees_back_and_forth("Agreed, @Nova.", "We price it at 20 euros, @Scout.")
    assert agrees_back_and_forth("Yes, exactly!", "Agreed, @Nova.")
    assert stall_of([("Nova", "We price it at 20 euros, @Scout."), ("Scout", "Agreed, @Nova.")]) \
        is None
    stall = stall_of([("Nova", "Price: 20 euros."), ("Scout", "Agreed."), ("Nova", "Exactly.")])
    assert (stall.reason, stall.why) == ("agreeing", "Nova and Scout only agreed with each other")


def test_a_reply_repeating_any_earlier_reply_of_its_generation_stalls():
    replies = [("Nova", "We ship Friday, @Scout."), ("Scout", "QA needs Monday, @Nova."),
               ("Nova", "We ship Friday, @Scout.")]
    assert stall_of(replies).why == "Nova repeated what was already said"
    assert stall_of(replies[:2]) is None
