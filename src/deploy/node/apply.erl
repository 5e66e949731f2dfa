%% A script's funs (see src/dist/script.rs), after prelude.erl and
%% load.erl: ApplyNow(Load, Remove, Force, Owner, Go) makes the node run
%% what it is given, all of it or nothing (apply_main.erl calls it; so does
%% flight_main.erl).
%% The replaced code is purged where nobody runs it any more by a process
%% that goes on after the answer, once the tool has let go of the node (its
%% node went down) or after a quarter of a second (a held session, such as
%% watch): OTP purges one module at a time, most of a deploy's work on the
%% node, and purging while the tool still finishes would have every node's
%% purge compete with it. The next run's inspect step names any process
%% still in old code.
%%
%%   Load   = [{Module, File, Binary}] to load, all at once; or
%%            {staged, Token, [Module]}: what the inspect step of run Token
%%            prepared (load.erl's Collect).
%%   Remove = [Module] to unload (they were not there before).
%%   Force  = true to kill processes that keep old code in the way.
%%   Owner  = the tool's node.
%%   Go     = none, or {Token, Step}: the tool writes its snapshot while
%%            the node prepares, and nothing changes (no process killed,
%%            nothing loaded) until the lock's holder has its word for this
%%            step of run Token (go, or abort if the snapshot could not be
%%            written: AwaitGo, src/deploy/word.rs).
%% Value:
%%   {stuck, [{Module, Pid, Name}]}: old code in use and Force is false;
%%       nothing was changed.
%%   {error, [{Module, Reason}], Changed}: the node refused; Changed says
%%       whether anything was loaded before it did. Aborted: {error, [], false}.
%%   {ok, Killed, Lingering, Running}: done; Lingering = [{Module, Pid, Name}]
%%       still run a module that was removed; Running = [{Module, Md5 | false}],
%%       what the node runs of each changed module right after (the read-back
%%       of --verify, in the same round trip).
AwaitGo = fun(none) -> go;
             (Token) ->
    case AskHolder(await, Token, infinity) of
        {ok, Word} -> Word;
        lost -> abort
    end
end,
ApplyNow = fun(Load, Remove, Force, Owner, Go) ->
    {Loading, Ready} = case Load of
        {staged, Token, Staged} -> {Staged, fun() -> Collect(Token, Staged) end};
        _ -> {Column(1, Load), fun() -> Prepare(Load) end}
    end,
    Changing = Loading ++ Remove,
    Blocking = [M || M <- lists:filter(fun erlang:check_old_code/1, Changing),
                     not code:soft_purge(M)],
    InUse = lists:append([InOld(M) || M <- Blocking]),
    Unload = fun(M) ->
        code:delete(M),
        case code:soft_purge(M) of
            true -> [];
            false when Force -> code:purge(M), [];
            false -> InOld(M)
        end
    end,
    Commit = fun(Prepared) ->
        Killed = case Force of
            true -> [code:purge(M) || M <- Blocking], length(InUse);
            false -> 0
        end,
        case Finish(Prepared) of
            ok ->
                Removed = lists:append([Unload(M) || M <- Remove]),
                spawn(fun() ->
                    monitor_node(Owner, true),
                    receive {nodedown, Owner} -> ok after 250 -> ok end,
                    [code:soft_purge(M) || M <- Loading]
                end),
                Now = fun(M) -> {M, erlang:module_loaded(M) andalso
                                    erlang:get_module_info(M, md5)} end,
                %% All loaded, unless something else changed them since.
                Loaded = try lists:zip(Loading, CurrentMd5s(Loading))
                         catch error:badarg -> lists:map(Now, Loading)
                         end,
                {ok, Killed, Removed, Loaded ++ lists:map(Now, Remove)};
            Failed -> Failed
        end
    end,
    case InUse =/= [] andalso not Force of
        true -> {stuck, InUse};
        false ->
            case Ready() of
                {error, Errors} -> {error, Errors, false};
                {ok, Prepared} ->
                    case AwaitGo(Go) of
                        go -> Commit(Prepared);
                        abort -> {error, [], false}
                    end
            end
    end
end,
