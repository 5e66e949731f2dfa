%% Waits until `mix run` has loaded the project (its -e registers
%% hotswap_build_ready), then ends the build node when the tool that
%% started it goes away, whatever way it goes (even killed): its
%% connection drops, and the node halts. The guard is registered as
%% hotswap_build_guard: a node nobody guards halts on its own (build.rs).
%% Answers {ok, ConsolidatesAsItCompiles} or timeout.
Owner = OwnerName,
Guard = fun() ->
    erlang:monitor_node(Owner, true),
    receive {nodedown, Owner} -> erlang:halt(0) end
end,
register(hotswap_build_guard, spawn(Guard)),
Ready = fun Wait(0) -> timeout;
            Wait(N) ->
                case whereis(hotswap_build_ready) of
                    undefined -> timer:sleep(20), Wait(N - 1);
                    _ -> ok
                end
        end,
%% Once ready, also says whether this Mix consolidates protocols as it
%% compiles (Elixir 1.19 on: the module below is where it does).
case Ready(3000) of
    ok -> {ok, code:which('Elixir.Mix.Compilers.Protocol') =/= non_existing};
    timeout -> timeout
end.
