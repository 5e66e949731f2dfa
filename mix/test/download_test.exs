defmodule HotswapNode.DownloadTest do
  use ExUnit.Case, async: false
  import ExUnit.CaptureLog

  # A server whose certificate no system CA signed: HTTPS is verified, so
  # nothing is downloaded from it.
  test "HTTPS refuses a server the system's CAs do not vouch for" do
    {:ok, _} = Application.ensure_all_started(:ssl)

    %{server_config: server} =
      :public_key.pkix_test_data(%{
        server_chain: %{
          root: [key: {:rsa, 2048, 65537}],
          intermediates: [],
          peer: [key: {:rsa, 2048, 65537}]
        },
        client_chain: %{
          root: [key: {:rsa, 2048, 65537}],
          intermediates: [],
          peer: [key: {:rsa, 2048, 65537}]
        }
      })

    {:ok, listen} = :ssl.listen(0, [{:reuseaddr, true}, {:active, false} | server])
    {:ok, {_, port}} = :ssl.sockname(listen)

    spawn_link(fn ->
      {:ok, socket} = :ssl.transport_accept(listen)
      _ = :ssl.handshake(socket, 5000)
    end)

    get = fn ->
      send(self(), HotswapNode.Download.get("https://localhost:#{port}/x", fn _ -> nil end))
    end

    capture_log(get)
    assert_received {:error, message}
    assert message =~ "cannot download https://localhost:#{port}/x"
    assert message =~ ~r/unknown_ca|Unknown CA|bad_cert/i
  end
end
