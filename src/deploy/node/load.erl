%% Loading in two halves (functions, after prelude.erl; see
%% src/peer/script.rs): prepare does the work that changes nothing
%% (code:prepare_loading/1, most of a load's time), finish makes the node
%% run all of it at once. A step that waits for the tool's word prepares
%% before it (apply.erl's await_go).
%%
%% prepare(Load) -> {ok, Prepared} | {error, [{Module, Reason}]}
%%   Load = [{Module, File, Binary}]. atomic loading refuses modules with
%%   -on_load: the node says which, and finish loads those one by one after
%%   the rest.
prepare([]) -> {ok, {none, []}};
prepare(Load) ->
    case code:prepare_loading(Load) of
        {ok, Prepared} -> {ok, {Prepared, []}};
        {error, Errors} ->
            OnLoad = [M || {M, on_load_not_allowed} <- Errors],
            case length(OnLoad) =:= length(Errors) of
                false -> {error, Errors};
                true -> prepare_apart(Load, OnLoad)
            end
    end.
%% prepare_apart(Load, OnLoad): Load but the modules OnLoad prepared, those
%% kept to load one by one.
prepare_apart(Load, OnLoad) ->
    Single = [L || {M, _, _} = L <- Load, lists:member(M, OnLoad)],
    Rest = [L || {M, _, _} = L <- Load, not lists:member(M, OnLoad)],
    case Rest =:= [] orelse code:prepare_loading(Rest) of
        true -> {ok, {none, Single}};
        {ok, Prepared} -> {ok, {Prepared, Single}};
        Failed -> Failed
    end.
%% finish(Prepared) -> ok | {error, [{Module, Reason}], Changed}
%%   Changed: whether some modules were loaded before the node refused.
finish({Prepared, Single}) ->
    case Prepared =:= none orelse code:finish_loading(Prepared) of
        {error, Errors} -> {error, Errors, false};
        _ ->
            case [E || E <- [load_one(L) || L <- Single], E =/= ok] of
                [] -> ok;
                Failed -> {error, Failed, true}
            end
    end.
load_one({M, File, Bin}) ->
    case code:load_binary(M, File, Bin) of
        {module, M} -> ok;
        {error, Why} -> {M, Why}
    end.
