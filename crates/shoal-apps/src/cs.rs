//! client_server_mp shared layout (filled in with the server and client).
