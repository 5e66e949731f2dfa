%% Loading in two halves (funs, after prelude.erl; see src/dist/script.rs):
%% Prepare does the work that changes nothing (code:prepare_loading/1, most
%% of a load's time), Finish makes the node run all of it at once. A step
%% that waits for the tool's word prepares before it (apply.erl's AwaitGo).
%%
%% Prepare(Load) -> {ok, Prepared} | {error, [{Module, Reason}]}
%%   Load = [{Module, File, Binary}]. atomic loading refuses modules with
%%   -on_load: the node says which, and Finish loads those one by one after
%%   the rest.
%% Finish(Prepared) -> ok | {error, [{Module, Reason}], Changed}
%%   Changed: whether some modules were loaded before the node refused.
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
