%% Loading in two halves (funs, after prelude.erl; see src/dist/script.rs):
%% Prepare does the work that changes nothing (code:prepare_loading/1, most
%% of a load's time), Finish makes the node run all of it at once. The
%% inspect step of a deploy to several nodes prepares on every node before
%% any node finishes (Stage, in inspect_main.erl); a lone node does both in
%% one go.
%%
%% Prepare(Load) -> {ok, Staged} | {error, [{Module, Reason}]}
%%   Load = [{Module, File, Binary}]. atomic loading refuses modules with
%%   -on_load: the node says which, and Finish loads those one by one after
%%   the rest.
%% Finish(Staged) -> ok | {error, [{Module, Reason}], Changed}
%%   Changed: whether some modules were loaded before the node refused.
%% Collect(Token, Modules) -> {ok, Staged} | {error, [{Module, Reason}]}
%%   what the inspect step of run Token staged with the lock's holder.
%% AskHolder(Tag, Token, Timeout) -> {ok, Answer} | lost: sends the lock's
%%   holder {Tag, Token, self(), Ref} and waits for its {Ref, Answer}; lost
%%   when there is no holder, it goes, or it does not answer in time.
Prepare = fun([]) -> {ok, {none, []}};
             (Load) ->
    case code:prepare_loading(Load) of
        {ok, Prepared} -> {ok, {Prepared, []}};
        {error, Errors} ->
            OnLoad = [M || {M, on_load_not_allowed} <- Errors],
            case length(OnLoad) =:= length(Errors) of
                false -> {error, Errors};
                true ->
                    {Single, Rest} = lists:partition(
                        fun({M, _, _}) -> lists:member(M, OnLoad) end, Load),
                    case Rest =:= [] orelse code:prepare_loading(Rest) of
                        true -> {ok, {none, Single}};
                        {ok, Prepared} -> {ok, {Prepared, Single}};
                        Failed -> Failed
                    end
            end
    end
end,
Finish = fun({Prepared, Single}) ->
    LoadOne = fun({M, File, Bin}) ->
        case code:load_binary(M, File, Bin) of
            {module, M} -> ok;
            {error, Why} -> {M, Why}
        end
    end,
    case Prepared =:= none orelse code:finish_loading(Prepared) of
        {error, Errors} -> {error, Errors, false};
        _ ->
            case [E || E <- lists:map(LoadOne, Single), E =/= ok] of
                [] -> ok;
                Failed -> {error, Failed, true}
            end
    end
end,
AskHolder = fun(Tag, Token, Timeout) ->
    case whereis(hotswap_deploy_lock) of
        undefined -> lost;
        Holder ->
            Ref = monitor(process, Holder),
            Holder ! {Tag, Token, self(), Ref},
            receive
                {Ref, Answer} -> demonitor(Ref, [flush]), {ok, Answer};
                {'DOWN', Ref, _, _, _} -> lost
            after Timeout -> demonitor(Ref, [flush]), lost
            end
    end
end,
Collect = fun(Token, Modules) ->
    case AskHolder(collect, Token, 5000) of
        {ok, {ok, _} = Staged} -> Staged;
        _ -> {error, [{M, staged_code_lost} || M <- Modules]}
    end
end,
