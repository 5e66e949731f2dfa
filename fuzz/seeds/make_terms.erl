%% Writes seeds for the term, frame and handshake fuzz targets into the
%% folders given, made by a real node's own encoder: terms a node sends
%% (replies to rpc calls, pids, references, ports, funs, maps, big numbers,
%% binaries and bit strings), whole distribution frames around them, and
%% the handshake messages a node sends, built to the protocol.
%%   erl -noshell -sname seeds -s make_terms main TERMDIR FRAMEDIR HSDIR
-module(make_terms).
-export([main/1]).

main([TermDir, FrameDir, HsDir]) ->
    Terms = terms(),
    lists:foreach(fun({I, T}) -> write(TermDir, I, term_to_binary(T)) end, number(Terms)),
    lists:foreach(fun({I, T}) -> write(FrameDir, I, frame(T)) end, number(Terms)),
    lists:foreach(fun({I, B}) -> write(HsDir, I, B) end, number(handshakes())),
    halt(0).

number(List) -> lists:zip(lists:seq(1, length(List)), List).

write(Dir, I, Bytes) ->
    ok = file:write_file(filename:join(Dir, "seed" ++ integer_to_list(I)), Bytes).

terms() ->
    Pid = self(),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    {ok, Md5} = {ok, erlang:md5(<<"x">>)},
    [ok, {rex, ok}, {rex, {badrpc, {'EXIT', {undef, [{m, f, [], []}]}}}},
     {rex, [{lists, loaded, Md5}, {hs_greet, on_disk, Md5}, {gone, absent}]},
     {Ref, prepared}, {Ref, taken}, {say, {12345678901234, flight}, go, Pid, Ref},
     [Pid, Ref, Port], #{a => 1, <<"b">> => [2.5, -3]}, fun lists:map/2,
     fun(X) -> X end, 1 bsl 200, -(1 bsl 70), 3.14159, <<1, 2, 3>>, <<5:3>>,
     "a string", [1 | improper], {'Elixir.Example', 'héllo', '日本'},
     lists:seq(1, 300), list_to_tuple(lists:seq(1, 20)), erlang:system_info(otp_release),
     {rex, code:all_loaded()}].

%% A frame: length, pass-through, a SEND control and the message.
frame(Msg) ->
    Body = <<112, (term_to_binary({2, '', self()}))/binary, (term_to_binary(Msg))/binary>>,
    <<(byte_size(Body)):32, Body/binary>>.

handshakes() ->
    Flags = 16#3f7ffd,
    Name = atom_to_binary(node()),
    Challenge = 16#12345678,
    Digest = erlang:md5(<<"cookie", (integer_to_binary(Challenge))/binary>>),
    Sok = <<0, 3, "sok">>,
    N = <<$N, Flags:64, Challenge:32, 42:32, (byte_size(Name)):16, Name/binary>>,
    NMsg = <<(byte_size(N)):16, N/binary>>,
    Ack = <<0, 17, $a, Digest/binary>>,
    SendName = <<$N, Flags:64, 42:32, (byte_size(Name)):16, Name/binary>>,
    Reply = <<0, 21, $r, Challenge:32, Digest/binary>>,
    [<<Sok/binary, NMsg/binary, Ack/binary>>,
     <<0, 5, "alive", NMsg/binary, Ack/binary>>,
     <<0, 3, "nok">>, <<0, 11, "not_allowed">>,
     <<(byte_size(SendName)):16, SendName/binary, Reply/binary>>,
     <<Sok/binary, NMsg/binary>>].
