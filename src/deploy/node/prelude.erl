%% The first funs of every deploy script (see src/dist/script.rs).
%% Name(Pid): its registered name, or undefined.
%% InOld(Module): [{Module, Pid, Name}] of processes still running the
%% module's old code.
Name = fun(P) ->
    case process_info(P, registered_name) of
        {registered_name, N} -> N;
        _ -> undefined
    end
end,
InOld = fun(M) -> [{M, P, Name(P)} || P <- processes(), erlang:check_process_code(P, M)] end,
