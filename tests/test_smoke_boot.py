def test_landing_page_invites_sign_in(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Sign in to start" in response.data
