def test_landing_page_invites_sign_in(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Sign in to start" in response.data


def test_state_change_without_csrf_token_is_refused(client, make_user, login):
    login(make_user())
    response = client.post("/settings/sessions/sign-out-others")
    assert response.status_code == 400
    assert b"form expired" in response.data


def test_state_change_with_csrf_token_is_accepted(client, make_user, login, csrf_token):
    login(make_user())
    response = client.post(
        "/settings/sessions/sign-out-others", data={"csrf_token": csrf_token()}
    )
    assert response.status_code == 303
