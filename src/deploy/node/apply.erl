%% Evaluated on a target node by erl_eval (see src/dist/eval.rs), after
%% prelude.erl: ApplyNow() makes the node run what it is given, all of it
%% or nothing (apply_main.erl calls it; so does flight_main.erl).
%% The replaced code is purged where nobody runs it any more by a process
%% that goes on after the answer (OTP purges one module at a time, most of
%% a deploy's time on the node); the next run's inspect step names any
%% process still in it.
%%
%% Bindings:
%%   Load   = [{Module, File, Binary}] to load, all at once.
%%   Remove = [Module] to unload (they were not there before).
%%   Force  = true to kill processes that keep old code in the way.
%% Value:
%%   {stuck, [{Module, Pid, Name}]}: old code in use and Force is false;
%%       nothing was changed.
%%   {error, [{Module, Reason}], Changed}: the node refused; Changed says
%%       whether anything was loaded before it did.
%%   {ok, Killed, Lingering}: done; Lingering = [{Module, Pid, Name}] still
%%       run a module that was removed.
ApplyNow = fun() ->
    Changing = [M || {M, _, _} <- Load] ++ Remove,
    Blocking = [M || M <- Changing, erlang:check_old_code(M), not code:soft_purge(M)],
    InUse = lists:append([InOld(M) || M <- Blocking]),
    Killed = case Force of
        true -> [code:purge(M) || M <- Blocking], length(InUse);
        false -> 0
    end,
    LoadOne = fun({M, File, Bin}) ->
        case code:load_binary(M, File, Bin) of
            {module, M} -> ok;
            {error, Why} -> {M, Why}
        end
    end,
    %% atomic_load refuses modules with -on_load: the node says which, and
    %% those load one by one after the rest.
    LoadAll = fun([]) -> ok;
                 (Batch) ->
        case code:atomic_load(Batch) of
            ok -> ok;
            {error, Errors} ->
                OnLoad = [M || {M, on_load_not_allowed} <- Errors],
                case length(OnLoad) =:= length(Errors) of
                    false -> {error, Errors, false};
                    true ->
                        Rest = [B || {M, _, _} = B <- Batch, not lists:member(M, OnLoad)],
                        Single = [B || {M, _, _} = B <- Batch, lists:member(M, OnLoad)],
                        case Rest =:= [] orelse code:atomic_load(Rest) =:= ok of
                            false -> {error, Errors, false};
                            true ->
                                case [E || E <- lists:map(LoadOne, Single), E =/= ok] of
                                    [] -> ok;
                                    Failed -> {error, Failed, true}
                                end
                        end
                end
        end
    end,
    Unload = fun(M) ->
        code:delete(M),
        case code:soft_purge(M) of
            true -> [];
            false when Force -> code:purge(M), [];
            false -> InOld(M)
        end
    end,
    case InUse =/= [] andalso not Force of
        true -> {stuck, InUse};
        false ->
            case LoadAll(Load) of
                ok ->
                    Removed = lists:append([Unload(M) || M <- Remove]),
                    Loaded = [M || {M, _, _} <- Load],
                    spawn(fun() -> [code:soft_purge(M) || M <- Loaded] end),
                    {ok, Killed, Removed};
                Failed -> Failed
            end
    end
end,
